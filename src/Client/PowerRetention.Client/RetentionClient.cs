using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using PowerRetention.Grains;

namespace PowerRetention.Client;

/// <summary>
/// The .NET client of a PowerRetention cluster: connects to one by gateway addresses, or starts an
/// embedded in-process silo, and runs prefill jobs on it.
/// </summary>
public sealed partial class RetentionClient : IAsyncDisposable
{
    /// <summary>Cluster id shared by silos and clients unless configured otherwise.</summary>
    public const string DefaultClusterId = "powerret";

    /// <summary>Service id shared by silos and clients unless configured otherwise.</summary>
    public const string DefaultServiceId = "powerret";

    private readonly IHost? _host;

    private RetentionClient(IHost? host, IClusterClient grains, string description)
    {
        _host = host;
        Description = description;
        Grains = grains;
    }

    /// <summary>Where the client is connected, for messages.</summary>
    public string Description { get; }

    /// <summary>The Orleans client, for advanced use.</summary>
    public IClusterClient Grains { get; }

    /// <summary>
    /// Starts a one-silo cluster inside this process on free loopback ports and connects to it.
    /// </summary>
    public static async Task<RetentionClient> StartEmbeddedAsync(int computeThreads = 0, Action<ILoggingBuilder>? configureLogging = null, CancellationToken cancellationToken = default)
    {
        int siloPort = FreePort(), gatewayPort = FreePort();
        IHost host = Host.CreateDefaultBuilder()
            .ConfigureLogging(logging =>
            {
                logging.ClearProviders();
                configureLogging?.Invoke(logging);
            })
            .UseOrleans(silo =>
            {
                silo.UseLocalhostClustering(siloPort, gatewayPort, serviceId: DefaultServiceId, clusterId: DefaultClusterId);
                silo.AddActivityPropagation();
                silo.AddPowerRetention(device => device.Threads = computeThreads);
                silo.AddDecodeSessionStorage(redisConnectionString: null);
            })
            .Build();
        try
        {
            await host.StartAsync(cancellationToken);
        }
        catch
        {
            host.Dispose();
            throw;
        }

        return new RetentionClient(host, host.Services.GetRequiredService<IClusterClient>(), $"embedded silo on 127.0.0.1:{siloPort}");
    }

    /// <summary>Connects to a running cluster through one or more gateways ("host:port").</summary>
    /// <exception cref="ArgumentException">A gateway address is malformed.</exception>
    /// <exception cref="RetentionJobException">No gateway answered within <paramref name="timeout"/>.</exception>
    public static async Task<RetentionClient> ConnectAsync(IReadOnlyList<string> gateways, TimeSpan? timeout = null, string clusterId = DefaultClusterId, string serviceId = DefaultServiceId, CancellationToken cancellationToken = default)
    {
        IPEndPoint[] endpoints = gateways.Select(ParseEndpoint).ToArray();
        if (endpoints.Length == 0)
        {
            throw new ArgumentException("At least one gateway address (host:port) is needed.", nameof(gateways));
        }

        IHost host = Host.CreateDefaultBuilder()
            .ConfigureLogging(logging => logging.ClearProviders())
            .UseOrleansClient(client =>
            {
                client.UseStaticClustering(endpoints);
                client.AddActivityPropagation();
                client.Configure<ClusterOptions>(options =>
                {
                    options.ClusterId = clusterId;
                    options.ServiceId = serviceId;
                });
            })
            .Build();
        string description = "cluster at " + string.Join(", ", gateways);
        TimeSpan limit = timeout ?? TimeSpan.FromSeconds(15);
        using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeoutSource.CancelAfter(limit);
        try
        {
            await host.StartAsync(timeoutSource.Token);
        }
        catch (OperationCanceledException error) when (!cancellationToken.IsCancellationRequested)
        {
            host.Dispose();
            throw new RetentionJobException($"Could not connect to the {description}: no gateway accepted a connection within {limit.TotalSeconds:0.#} s.", error);
        }
        catch (Exception error) when (error is not OperationCanceledException)
        {
            host.Dispose();
            throw new RetentionJobException($"Could not connect to the {description}: {error.Message}", error);
        }

        return new RetentionClient(host, host.Services.GetRequiredService<IClusterClient>(), description);
    }

    /// <summary>Wraps an Orleans client that is already connected; disposing the result leaves it running.</summary>
    public static RetentionClient FromOrleansClient(IClusterClient client, string description = "existing Orleans client") =>
        new(null, client, description);

    /// <summary>Stops the client, and the embedded silo if there is one.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_host is null)
        {
            return;
        }

        try
        {
            await _host.StopAsync(TimeSpan.FromSeconds(10));
        }
        finally
        {
            _host.Dispose();
        }
    }

    internal static IPEndPoint ParseEndpoint(string address)
    {
        int colon = address.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(address.AsSpan(colon + 1), out int port) || port is < 1 or > 65535)
        {
            throw new ArgumentException($"Gateway address '{address}' is not host:port.", nameof(address));
        }

        string hostName = address[..colon];
        if (!IPAddress.TryParse(hostName, out IPAddress? ip))
        {
            ip = hostName.Equals("localhost", StringComparison.OrdinalIgnoreCase)
                ? IPAddress.Loopback
                : Dns.GetHostAddresses(hostName).FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork)
                    ?? throw new ArgumentException($"Gateway host '{hostName}' has no IPv4 address.", nameof(address));
        }

        return new IPEndPoint(ip, port);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
