using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using PowerRetention.Client;
using PowerRetention.Grains;

namespace PowerRetention.FrontDoor.Tests.Support;

/// <summary>
/// One silo on free loopback ports in this process, and the front door started in-process by
/// <see cref="WebApplicationFactory{TEntryPoint}"/> against that silo's gateway. The silo's compute
/// device passes every work item through <see cref="Gate"/>, so that tests can hold a job running.
/// </summary>
public sealed class FrontDoorFixture : IAsyncLifetime
{
    /// <summary>The front door's body limit in these tests, small so that the 413 test sends little.</summary>
    public const long MaxBodyBytes = 4 << 20;

    private IHost? _silo;

    public WebApplicationFactory<Program> Factory { get; private set; } = null!;

    public HttpClient Http { get; private set; } = null!;

    public ComputeGate Gate { get; } = new();

    /// <summary>The silo's gateway, "127.0.0.1:port", for failure messages.</summary>
    public string Gateway { get; private set; } = "";

    public async Task InitializeAsync()
    {
        int siloPort = FreePort(), gatewayPort = FreePort();
        Gateway = $"127.0.0.1:{gatewayPort}";
        _silo = Host.CreateDefaultBuilder()
            .ConfigureLogging(logging => logging.ClearProviders())
            .UseOrleans(silo =>
            {
                silo.UseLocalhostClustering(siloPort, gatewayPort, serviceId: RetentionClient.DefaultServiceId, clusterId: RetentionClient.DefaultClusterId);
                silo.AddActivityPropagation();
                silo.AddPowerRetention(device => device.Threads = 2);
                silo.Services.AddSingleton<IComputeGate>(Gate);
            })
            .Build();
        await _silo.StartAsync();

        Factory = new WebApplicationFactory<Program>().WithWebHostBuilder(web =>
        {
            web.UseSetting("PowerRetention:Gateways", Gateway);
            web.UseSetting("PowerRetention:FrontDoor:MaxBodyBytes", MaxBodyBytes.ToString(CultureInfo.InvariantCulture));
            web.ConfigureLogging(logging => logging.ClearProviders());
        });
        Http = Factory.CreateClient();
    }

    public async Task DisposeAsync()
    {
        Gate.Open();
        Http.Dispose();
        await Factory.DisposeAsync();
        if (_silo is not null)
        {
            await _silo.StopAsync(TimeSpan.FromSeconds(10));
            _silo.Dispose();
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>Shares one <see cref="FrontDoorFixture"/> among the test classes, which then run one at a time.</summary>
[CollectionDefinition(Name)]
public sealed class FrontDoorCollection : ICollectionFixture<FrontDoorFixture>
{
    public const string Name = "front door";
}

/// <summary>Holds compute work while closed; open unless a test closes it.</summary>
public sealed class ComputeGate : IComputeGate
{
    private readonly ManualResetEventSlim _open = new(initialState: true);
    private int _waiting;

    /// <summary>Work items waiting at the closed gate.</summary>
    public int Waiting => Volatile.Read(ref _waiting);

    public void Close() => _open.Reset();

    public void Open() => _open.Set();

    public void Enter(CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _waiting);
        try
        {
            _open.Wait(cancellationToken);
        }
        finally
        {
            Interlocked.Decrement(ref _waiting);
        }
    }
}
