using Microsoft.Extensions.Configuration;

namespace PowerRetention.AppHost;

/// <summary>
/// The app host's settings, from its configuration (command line <c>--Silos 3</c>, environment
/// variables, appsettings.json): silo count, clustering kind and ports. Silo i uses the ports
/// <see cref="SiloPort"/> + i and <see cref="GatewayPort"/> + i.
/// </summary>
internal sealed record ClusterSettings(int Silos, bool UseRedis, int SiloPort, int GatewayPort, int RedisPort, int FrontDoorPort)
{
    /// <summary>Where Debian's redis-server package installs the server.</summary>
    public const string RedisServerPath = "/usr/bin/redis-server";

    private const int MaxSilos = 16;

    /// <summary>Reads and checks the settings.</summary>
    /// <exception cref="InvalidOperationException">A setting is invalid, or Redis clustering is requested and redis-server is not installed.</exception>
    public static ClusterSettings Read(IConfiguration configuration)
    {
        int silos = ReadInt(configuration, "Silos", 2, 1, MaxSilos);
        string clustering = configuration["Clustering"] ?? "localhost";
        bool useRedis = clustering.ToLowerInvariant() switch
        {
            "localhost" => false,
            "redis" => true,
            _ => throw new InvalidOperationException($"Invalid setting Clustering={clustering}: expected localhost (the default) or redis."),
        };

        if (useRedis && !File.Exists(RedisServerPath))
        {
            throw new InvalidOperationException(
                $"Clustering=redis runs Redis from {RedisServerPath}, which is missing. Install it with 'apt-get install redis-server', or drop Clustering=redis to use localhost clustering.");
        }

        // 16379 rather than Redis' usual 6379, so that a Redis server already running on the machine does not clash.
        int redisPort = ReadInt(configuration, "RedisPort", 16379, 1, 65535);
        int frontDoorPort = ReadInt(configuration, "FrontDoorPort", 5080, 1, 65535);

        // Orleans' usual ports for the first silo.
        int siloPort = ReadInt(configuration, "SiloPort", 11111, 1, 65535 - MaxSilos);
        int gatewayPort = ReadInt(configuration, "GatewayPort", 30000, 1, 65535 - MaxSilos);
        if (Math.Abs(siloPort - gatewayPort) < silos)
        {
            throw new InvalidOperationException($"Invalid settings SiloPort={siloPort} and GatewayPort={gatewayPort}: the {silos} silos would share ports; keep them at least {silos} apart.");
        }

        return new ClusterSettings(silos, useRedis, siloPort, gatewayPort, redisPort, frontDoorPort);
    }

    private static int ReadInt(IConfiguration configuration, string key, int defaultValue, int minimum, int maximum)
    {
        string? text = configuration[key];
        if (text is null)
        {
            return defaultValue;
        }

        if (!int.TryParse(text, out int value) || value < minimum || value > maximum)
        {
            throw new InvalidOperationException($"Invalid setting {key}={text}: expected an integer from {minimum} to {maximum}.");
        }

        return value;
    }
}
