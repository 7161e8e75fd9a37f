using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using PowerRetention.Client;

namespace PowerRetention.FrontDoor.Cluster;

/// <summary>
/// Connects the front door to a PowerRetention cluster through its gateways, with Orleans' activity
/// propagation on so that a job's trace continues into the silos.
/// </summary>
internal static partial class ClusterConnection
{
    /// <summary>Configuration key of the gateway list: comma-separated <c>host:port</c> entries.</summary>
    public const string GatewaysKey = "PowerRetention:Gateways";

    /// <summary>Configuration key of the Orleans cluster id; default <see cref="RetentionClient.DefaultClusterId"/>.</summary>
    public const string ClusterIdKey = "PowerRetention:ClusterId";

    /// <summary>Configuration key of the Orleans service id; default <see cref="RetentionClient.DefaultServiceId"/>.</summary>
    public const string ServiceIdKey = "PowerRetention:ServiceId";

    /// <summary>Configuration key of how long to keep trying to reach a gateway at startup; default 60 s.</summary>
    public const string ConnectTimeoutKey = "PowerRetention:ConnectTimeout";

    /// <summary>
    /// Adds the Orleans client and a <see cref="RetentionClient"/> over it. Settings are read when the
    /// host is built, so that configuration added later (tests, Aspire) applies.
    /// </summary>
    public static IHostApplicationBuilder AddRetentionCluster(this IHostApplicationBuilder builder)
    {
        builder.UseOrleansClient(client =>
        {
            client.UseStaticClustering((OptionsBuilder<StaticGatewayListProviderOptions> gateways) => gateways.Configure<IConfiguration>((options, configuration) =>
                options.Gateways = [.. ReadGateways(configuration).Select(gateway => ParseEndpoint(gateway).ToGatewayUri())]));
            client.AddActivityPropagation();
            client.UseConnectionRetryFilter<ConnectRetryFilter>();
        });
        builder.Services.AddOptions<ClusterOptions>()
            .Configure<IConfiguration>((options, configuration) =>
            {
                options.ClusterId = configuration[ClusterIdKey] ?? RetentionClient.DefaultClusterId;
                options.ServiceId = configuration[ServiceIdKey] ?? RetentionClient.DefaultServiceId;
            });
        builder.Services.AddSingleton(services =>
        {
            IReadOnlyList<string> gateways = ReadGateways(services.GetRequiredService<IConfiguration>());
            return RetentionClient.FromOrleansClient(services.GetRequiredService<IClusterClient>(), "cluster at " + string.Join(", ", gateways));
        });
        return builder;
    }

    /// <summary>
    /// Returns the gateways: the list under <see cref="GatewaysKey"/>, or else every endpoint named
    /// "gateway" that Aspire injected as <c>services:{resource}:gateway:{index}</c> = <c>tcp://host:port</c>.
    /// </summary>
    /// <exception cref="InvalidOperationException">No gateway is configured, or an Aspire endpoint is not a URI.</exception>
    public static IReadOnlyList<string> ReadGateways(IConfiguration configuration)
    {
        string? listed = configuration[GatewaysKey];
        if (!string.IsNullOrWhiteSpace(listed))
        {
            return listed.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        }

        var injected = new List<string>();
        foreach (IConfigurationSection resource in configuration.GetSection("services").GetChildren())
        {
            foreach (IConfigurationSection endpoint in resource.GetSection("gateway").GetChildren())
            {
                if (!Uri.TryCreate(endpoint.Value, UriKind.Absolute, out Uri? uri))
                {
                    throw new InvalidOperationException($"Invalid gateway endpoint '{endpoint.Value}' in {endpoint.Path}: expected tcp://host:port.");
                }

                injected.Add($"{uri.Host}:{uri.Port}");
            }
        }

        if (injected.Count == 0)
        {
            throw new InvalidOperationException(
                $"No cluster gateway is configured. Set {GatewaysKey} to a comma-separated list of host:port, such as " +
                $"127.0.0.1:30000,127.0.0.1:30001 (environment variable PowerRetention__Gateways), or run the front door from the app host.");
        }

        return injected;
    }

    /// <summary>Parses "host:port"; a host name resolves to its first IPv4 address.</summary>
    /// <exception cref="InvalidOperationException">The entry is not host:port or the host has no IPv4 address.</exception>
    public static IPEndPoint ParseEndpoint(string gateway)
    {
        int colon = gateway.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(gateway.AsSpan(colon + 1), out int port) || port is < 1 or > 65535)
        {
            throw new InvalidOperationException($"Invalid gateway '{gateway}' in {GatewaysKey}: expected host:port such as 127.0.0.1:30000.");
        }

        string host = gateway[..colon];
        if (IPAddress.TryParse(host, out IPAddress? address))
        {
            return new IPEndPoint(address, port);
        }

        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase))
        {
            return new IPEndPoint(IPAddress.Loopback, port);
        }

        IPAddress resolved = Dns.GetHostAddresses(host).FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork)
            ?? throw new InvalidOperationException($"Gateway host '{host}' in {GatewaysKey} has no IPv4 address.");
        return new IPEndPoint(resolved, port);
    }

    /// <summary>Retries the first connection once a second until the connect timeout, so that the front door may start before the silos.</summary>
    private sealed partial class ConnectRetryFilter(IConfiguration configuration, ILogger<ConnectRetryFilter> logger, TimeProvider time) : IClientConnectionRetryFilter
    {
        private readonly DateTimeOffset _started = time.GetUtcNow();
        private int _attempt;

        public async Task<bool> ShouldRetryConnectionAttempt(Exception exception, CancellationToken cancellationToken)
        {
            TimeSpan limit = TimeSpan.TryParse(configuration[ConnectTimeoutKey], out TimeSpan configured) ? configured : TimeSpan.FromSeconds(60);
            TimeSpan elapsed = time.GetUtcNow() - _started;
            _attempt++;
            if (elapsed >= limit)
            {
                LogGaveUp(logger, _attempt, elapsed.TotalSeconds, exception);
                return false;
            }

            LogRetrying(logger, _attempt, exception.Message);
            await Task.Delay(TimeSpan.FromSeconds(1), time, cancellationToken);
            return true;
        }

        [LoggerMessage(Level = LogLevel.Warning, Message = "Could not reach a cluster gateway (attempt {Attempt}): {Error}; retrying in 1 s")]
        private static partial void LogRetrying(ILogger logger, int attempt, string error);

        [LoggerMessage(Level = LogLevel.Error, Message = "Could not reach a cluster gateway after {Attempt} attempts in {Seconds} s; giving up")]
        private static partial void LogGaveUp(ILogger logger, int attempt, double seconds, Exception error);
    }
}
