using PowerRetention.AppHost;

// The PowerRetention cluster for local runs: N silos (setting "Silos", default 2), the HTTP front door
// over their gateways, and Redis when "Clustering=redis" replaces localhost clustering. Silo ports are
// fixed and unproxied because Orleans advertises its own endpoints to peers and clients.
var builder = DistributedApplication.CreateBuilder(args);
ClusterSettings settings = ClusterSettings.Read(builder.Configuration);

IResourceBuilder<ExecutableResource>? redis = null;
if (settings.UseRedis)
{
    redis = builder.AddExecutable("redis", ClusterSettings.RedisServerPath, builder.AppHostDirectory,
            "--bind", "127.0.0.1", "--port", $"{settings.RedisPort}", "--save", "", "--appendonly", "no")
        .WithEndpoint(port: settings.RedisPort, name: "tcp", scheme: "tcp", isProxied: false)
        .WithTcpHealthCheck(settings.RedisPort);
}

var silos = new List<IResourceBuilder<ProjectResource>>();
for (int i = 0; i < settings.Silos; i++)
{
    int siloPort = settings.SiloPort + i, gatewayPort = settings.GatewayPort + i;
    var silo = builder.AddProject<Projects.PowerRetention_Silo>($"silo{i}")
        .WithEndpoint(port: siloPort, name: "silo", scheme: "tcp", isProxied: false)
        .WithEndpoint(port: gatewayPort, name: "gateway", scheme: "tcp", isProxied: false)
        .WithArgs("--silo-port", $"{siloPort}", "--gateway-port", $"{gatewayPort}", "--advertise", "127.0.0.1")
        .WithTcpHealthCheck(gatewayPort);
    if (redis is not null)
    {
        silo.WithArgs("--redis", $"127.0.0.1:{settings.RedisPort}").WaitFor(redis);
    }
    else if (i > 0)
    {
        // Localhost clustering: the first silo keeps the membership table, so the others join through it.
        silo.WithArgs("--primary", $"127.0.0.1:{settings.SiloPort}").WaitFor(silos[0]);
    }

    silos.Add(silo);
}

var frontDoor = builder.AddProject<Projects.PowerRetention_FrontDoor>("frontdoor")
    .WithHttpEndpoint(port: settings.FrontDoorPort, name: "http")
    .WithHttpHealthCheck("/health");
foreach (var silo in silos)
{
    frontDoor.WithReference(silo.GetEndpoint("gateway")).WaitFor(silo);
}

builder.Build().Run();
