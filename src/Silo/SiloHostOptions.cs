using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Configuration;

namespace PowerRetention.Silo;

/// <summary>One command-line option of the silo host and the configuration key it sets.</summary>
/// <param name="Name">The option as typed, such as <c>--silo-port</c>.</param>
/// <param name="ValueName">Placeholder of its value in help text, such as <c>PORT</c>.</param>
/// <param name="ConfigurationKey">Key under <see cref="SiloHostOptions.SectionName"/>, such as <c>SiloPort</c>.</param>
/// <param name="Description">Help text: what the option sets and its default.</param>
public sealed record SiloOptionInfo(string Name, string ValueName, string ConfigurationKey, string Description);

/// <summary>Invalid silo options: the message names the option or configuration key and the value.</summary>
public sealed class SiloOptionsException(string message) : Exception(message);

/// <summary>
/// Settings of one silo: its endpoints, how it finds the rest of the cluster, and its compute threads.
/// Read from command-line options, which override the configuration keys under
/// <see cref="SectionName"/> (environment variables such as <c>PowerRetention__Silo__SiloPort</c>).
/// </summary>
public sealed record SiloHostOptions
{
    /// <summary>Configuration section of the silo settings.</summary>
    public const string SectionName = "PowerRetention:Silo";

    /// <summary>Default silo-to-silo port, Orleans' usual one.</summary>
    public const int DefaultSiloPort = 11111;

    /// <summary>Default client gateway port, Orleans' usual one.</summary>
    public const int DefaultGatewayPort = 30000;

    /// <summary>Default cluster and service id, equal to the client SDK's defaults so that clients connect without options.</summary>
    public const string DefaultId = "powerret";

    /// <summary>The command-line options, in help order.</summary>
    public static IReadOnlyList<SiloOptionInfo> CommandLineOptions { get; } =
    [
        new("--silo-port", "PORT", "SiloPort", $"TCP port for silo-to-silo traffic. Default {DefaultSiloPort}."),
        new("--gateway-port", "PORT", "GatewayPort", $"TCP port clients connect to. Default {DefaultGatewayPort}."),
        new("--primary", "HOST:PORT", "Primary", "Silo endpoint of the primary silo, for several silos on one machine with localhost clustering. The first silo omits it and is the primary."),
        new("--advertise", "IP", "Advertise", "IP address other silos and clients use to reach this silo. Default 127.0.0.1."),
        new("--cluster-id", "ID", "ClusterId", $"Orleans cluster id, the same on every silo and client. Default {DefaultId}."),
        new("--service-id", "ID", "ServiceId", $"Orleans service id, the same on every silo and client. Default {DefaultId}."),
        new("--threads", "N", "Threads", "Threads of the compute device that runs the kernels; 0 means one per core. Default 0."),
        new("--redis", "CONNECTION", "Redis", "Redis connection string, such as localhost:6379, for Redis clustering in place of localhost clustering."),
        new("--device", "NAME", "Device", "Compute backend of this silo: auto (CUDA when a device initialises, else the CPU), cpu or cuda. Default auto."),
    ];

    /// <summary>Silo-to-silo port.</summary>
    public int SiloPort { get; init; } = DefaultSiloPort;

    /// <summary>Client gateway port.</summary>
    public int GatewayPort { get; init; } = DefaultGatewayPort;

    /// <summary>Silo endpoint of the primary silo for localhost clustering; null when this silo is the primary.</summary>
    public IPEndPoint? Primary { get; init; }

    /// <summary>Address other silos and clients use to reach this silo.</summary>
    public IPAddress Advertise { get; init; } = IPAddress.Loopback;

    /// <summary>Orleans cluster id.</summary>
    public string ClusterId { get; init; } = DefaultId;

    /// <summary>Orleans service id.</summary>
    public string ServiceId { get; init; } = DefaultId;

    /// <summary>Compute device threads; 0 means one per core.</summary>
    public int Threads { get; init; }

    /// <summary>Redis connection string for Redis clustering; null selects localhost clustering.</summary>
    public string? Redis { get; init; }

    /// <summary>Compute backend: auto, cpu or cuda.</summary>
    public string Device { get; init; } = "auto";

    /// <summary>The silo-to-silo endpoint other silos use.</summary>
    public IPEndPoint SiloEndpoint => new(Advertise, SiloPort);

    /// <summary>The gateway endpoint clients use.</summary>
    public IPEndPoint GatewayEndpoint => new(Advertise, GatewayPort);

    /// <summary>Loads the configuration the host reads: appsettings.json in the current folder, if present, then environment variables.</summary>
    public static IConfiguration LoadConfiguration() =>
        new ConfigurationBuilder()
            .SetBasePath(Directory.GetCurrentDirectory())
            .AddJsonFile("appsettings.json", optional: true)
            .AddEnvironmentVariables()
            .Build();

    /// <summary>Parses <c>--name value</c> and <c>--name=value</c> arguments into option values by option name.</summary>
    /// <exception cref="SiloOptionsException">An argument is unknown, repeated or lacks its value.</exception>
    public static Dictionary<string, string> ParseArguments(IReadOnlyList<string> arguments)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < arguments.Count; i++)
        {
            string argument = arguments[i];
            string name = argument;
            string? value = null;
            int equals = argument.IndexOf('=', StringComparison.Ordinal);
            if (argument.StartsWith("--", StringComparison.Ordinal) && equals > 2)
            {
                name = argument[..equals];
                value = argument[(equals + 1)..];
            }

            if (!CommandLineOptions.Any(o => o.Name == name))
            {
                throw new SiloOptionsException(argument.StartsWith("--", StringComparison.Ordinal)
                    ? $"unknown option '{name}'"
                    : $"unexpected argument '{argument}' (options start with --)");
            }

            if (value is null)
            {
                if (i + 1 >= arguments.Count)
                {
                    throw new SiloOptionsException($"option {name} needs a value ({CommandLineOptions.First(o => o.Name == name).ValueName})");
                }

                value = arguments[++i];
            }

            if (!values.TryAdd(name, value))
            {
                throw new SiloOptionsException($"option {name} is given more than once");
            }
        }

        return values;
    }

    /// <summary>
    /// Creates the options from command-line values (by option name, as returned by <see cref="ParseArguments"/>)
    /// over the keys of <see cref="SectionName"/> in <paramref name="configuration"/>.
    /// </summary>
    /// <exception cref="SiloOptionsException">A value is invalid or two settings conflict; the message names the option or key.</exception>
    public static SiloHostOptions Create(IReadOnlyDictionary<string, string> commandLine, IConfiguration? configuration)
    {
        ArgumentNullException.ThrowIfNull(commandLine);
        IConfigurationSection? section = configuration?.GetSection(SectionName);
        var sources = new Dictionary<string, (string Value, string Source)>(StringComparer.Ordinal);
        foreach (SiloOptionInfo option in CommandLineOptions)
        {
            if (commandLine.TryGetValue(option.Name, out string? value))
            {
                sources[option.ConfigurationKey] = (value, option.Name);
            }
            else if (section?[option.ConfigurationKey] is string configured)
            {
                sources[option.ConfigurationKey] = (configured, $"{SectionName}:{option.ConfigurationKey}");
            }
        }

        var options = new SiloHostOptions
        {
            SiloPort = ParsePort(sources, "SiloPort", DefaultSiloPort),
            GatewayPort = ParsePort(sources, "GatewayPort", DefaultGatewayPort),
            Primary = sources.TryGetValue("Primary", out var primary) && primary.Value.Length > 0 ? ParseEndpoint(primary.Value, primary.Source) : null,
            Advertise = sources.TryGetValue("Advertise", out var advertise) ? ParseAddress(advertise.Value, advertise.Source) : IPAddress.Loopback,
            ClusterId = ParseId(sources, "ClusterId"),
            ServiceId = ParseId(sources, "ServiceId"),
            Threads = ParseThreads(sources),
            Redis = sources.TryGetValue("Redis", out var redis) && redis.Value.Length > 0 ? redis.Value : null,
            Device = ParseDevice(sources),
        };

        if (options.SiloPort == options.GatewayPort)
        {
            throw new SiloOptionsException($"the silo port and the gateway port are both {options.SiloPort}; give them different ports");
        }

        if (options.Redis is not null && options.Primary is not null)
        {
            throw new SiloOptionsException("--primary applies to localhost clustering only; with --redis the silos find each other through Redis, so omit --primary");
        }

        return options;
    }

    private static int ParsePort(Dictionary<string, (string Value, string Source)> sources, string key, int defaultValue)
    {
        if (!sources.TryGetValue(key, out var entry))
        {
            return defaultValue;
        }

        if (!int.TryParse(entry.Value, NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port is < 1 or > 65535)
        {
            throw new SiloOptionsException($"invalid value '{entry.Value}' for {entry.Source}: expected a TCP port from 1 to 65535");
        }

        return port;
    }

    private static string ParseDevice(Dictionary<string, (string Value, string Source)> sources)
    {
        if (!sources.TryGetValue("Device", out var entry))
        {
            return "auto";
        }

        string value = entry.Value.Trim().ToLowerInvariant();
        return value is "auto" or "cpu" or "cuda"
            ? value
            : throw new SiloOptionsException($"invalid value '{entry.Value}' for {entry.Source}: expected auto, cpu or cuda");
    }

    private static int ParseThreads(Dictionary<string, (string Value, string Source)> sources)
    {
        if (!sources.TryGetValue("Threads", out var entry))
        {
            return 0;
        }

        if (!int.TryParse(entry.Value, NumberStyles.None, CultureInfo.InvariantCulture, out int threads))
        {
            throw new SiloOptionsException($"invalid value '{entry.Value}' for {entry.Source}: expected a thread count of 0 or more");
        }

        return threads;
    }

    private static string ParseId(Dictionary<string, (string Value, string Source)> sources, string key)
    {
        if (!sources.TryGetValue(key, out var entry))
        {
            return DefaultId;
        }

        if (string.IsNullOrWhiteSpace(entry.Value))
        {
            throw new SiloOptionsException($"invalid value '{entry.Value}' for {entry.Source}: the id must not be empty");
        }

        return entry.Value;
    }

    private static IPAddress ParseAddress(string text, string source)
    {
        if (!IPAddress.TryParse(text, out IPAddress? address))
        {
            throw new SiloOptionsException($"invalid value '{text}' for {source}: expected an IP address such as 127.0.0.1");
        }

        return address;
    }

    // Accepts an IP address, "localhost" or a host name with an IPv4 address, followed by ":port".
    private static IPEndPoint ParseEndpoint(string text, string source)
    {
        int colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port is < 1 or > 65535)
        {
            throw new SiloOptionsException($"invalid value '{text}' for {source}: expected HOST:PORT such as 127.0.0.1:11111");
        }

        string host = text[..colon];
        if (IPAddress.TryParse(host, out IPAddress? address))
        {
            return new IPEndPoint(address, port);
        }

        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase))
        {
            return new IPEndPoint(IPAddress.Loopback, port);
        }

        try
        {
            IPAddress resolved = Dns.GetHostAddresses(host).FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork)
                ?? throw new SiloOptionsException($"invalid value '{text}' for {source}: host '{host}' has no IPv4 address");
            return new IPEndPoint(resolved, port);
        }
        catch (SocketException error)
        {
            throw new SiloOptionsException($"invalid value '{text}' for {source}: cannot resolve host '{host}': {error.Message}");
        }
    }
}
