using System.Globalization;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Orleans.Configuration;
using PowerRetention.Grains;
using PowerRetention.Kernels.Gpu;
using PowerRetention.ServiceDefaults;

namespace PowerRetention.Silo;

/// <summary>
/// The PowerRetention silo host: an Orleans silo with the PowerRetention grains, localhost or Redis
/// clustering and console logging. Used by <c>powerret-silo</c> and by <c>powerret silo</c>.
/// </summary>
public static partial class SiloHost
{
    /// <summary>Creates the host builder of one silo. Logs go to the error stream, one line each with a UTC timestamp.</summary>
    /// <remarks>
    /// Configuration comes from appsettings.json and environment variables: section <c>Logging</c> for log levels
    /// and the console format (<c>Logging:Console:FormatterName=json</c> gives JSON lines), and section
    /// <c>PowerRetention:Jobs</c> for <see cref="JobOptions"/>. Orleans and Microsoft categories log warnings and
    /// errors only unless <c>Logging:LogLevel</c> sets their levels.
    /// </remarks>
    public static IHostBuilder CreateBuilder(SiloHostOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return Host.CreateDefaultBuilder()
            .ConfigureLogging((context, logging) =>
            {
                logging.ClearProviders();
                logging.AddFilter("Orleans", LogLevel.Warning);
                logging.AddFilter("Microsoft", LogLevel.Warning);

                // Added again after the defaults above, so that configured levels take precedence.
                logging.AddConfiguration(context.Configuration.GetSection("Logging"));
                // The console logger ignores the formatter options unless a formatter is named.
                string formatter = context.Configuration["Logging:Console:FormatterName"] ?? ConsoleFormatterNames.Simple;
                logging.AddConsole(console =>
                {
                    console.FormatterName = formatter;
                    console.LogToStandardErrorThreshold = LogLevel.Trace;
                });
                logging.Services.Configure<SimpleConsoleFormatterOptions>(simple =>
                {
                    simple.SingleLine = true;
                    simple.UseUtcTimestamp = true;
                    simple.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
                });
                logging.Services.Configure<JsonConsoleFormatterOptions>(json =>
                {
                    json.UseUtcTimestamp = true;
                    json.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
                });
            })

            // After the logging setup, whose ClearProviders would remove the OpenTelemetry log provider.
            .AddServiceDefaults()
            .ConfigureServices((context, services) =>
            {
                services.Configure<ConsoleLifetimeOptions>(lifetime => lifetime.SuppressStatusMessages = true);
                services.Configure<JobOptions>(context.Configuration.GetSection("PowerRetention:Jobs"));
            })
            .UseOrleans(silo => ConfigureSilo(silo, options));
    }

    /// <summary>
    /// Runs a silo until <paramref name="cancellationToken"/> is cancelled or the process receives Ctrl+C or SIGTERM,
    /// then stops it gracefully. Writes one line to <paramref name="output"/> once the silo accepts clients:
    /// <c>Silo ready: silo 127.0.0.1:11111, gateway 127.0.0.1:30000, cluster powerret</c>.
    /// </summary>
    /// <returns>0 after a clean stop.</returns>
    /// <exception cref="Exception">The silo failed to start, for example because a port is in use; the host is disposed.</exception>
    public static async Task<int> RunAsync(SiloHostOptions options, TextWriter output, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(output);
        using IHost host = CreateBuilder(options).Build();
        ILogger logger = host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("PowerRetention.Silo");
        string clustering = options.Redis is null ? "localhost" : "Redis";
        string primary = options.Primary?.ToString() ?? "this silo";
        LogStarting(logger, options.SiloEndpoint.ToString(), options.GatewayEndpoint.ToString(), options.ClusterId, options.ServiceId, clustering, primary);
        try
        {
            // Creating the compute device chooses its backend now, so "--device cuda" without a usable GPU
            // fails at start with the reason instead of at the first job, and "auto" logs its choice.
            host.Services.GetRequiredService<ComputeDevice>();
            await host.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception error) when (error is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            LogStartFailed(logger, options.SiloEndpoint.ToString(), error);
            throw;
        }

        LogReady(logger, options.SiloEndpoint.ToString(), options.GatewayEndpoint.ToString(), options.ClusterId);
        await output.WriteLineAsync(ReadyLine(options)).ConfigureAwait(false);
        await output.FlushAsync(CancellationToken.None).ConfigureAwait(false);

        // Completes when the token is cancelled or the console lifetime receives Ctrl+C or SIGTERM, then stops the silo.
        await host.WaitForShutdownAsync(cancellationToken).ConfigureAwait(false);
        LogStopped(logger, options.SiloEndpoint.ToString());
        return 0;
    }

    /// <summary>
    /// Runs <c>powerret-silo</c>: parses the arguments over the configuration and runs the silo.
    /// Exit codes: 0 after a clean stop, 1 when the silo failed, 2 for invalid options (one line on <paramref name="error"/>).
    /// </summary>
    public static async Task<int> RunCommandLineAsync(IReadOnlyList<string> arguments, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        if (arguments.Contains("--help") || arguments.Contains("-h"))
        {
            WriteHelp(output);
            return 0;
        }

        SiloHostOptions options;
        try
        {
            options = SiloHostOptions.Create(SiloHostOptions.ParseArguments(arguments), SiloHostOptions.LoadConfiguration());
        }
        catch (SiloOptionsException invalid)
        {
            await error.WriteLineAsync($"powerret-silo: {invalid.Message}. Run 'powerret-silo --help' for the options.").ConfigureAwait(false);
            return 2;
        }

        try
        {
            return await RunAsync(options, output, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception failure) when (failure is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            await error.WriteLineAsync($"powerret-silo: the silo on {options.SiloEndpoint} failed: {failure.GetType().Name}: {failure.Message.ReplaceLineEndings(" ")}").ConfigureAwait(false);
            return 1;
        }
    }

    /// <summary>Returns the line printed once the silo is ready.</summary>
    public static string ReadyLine(SiloHostOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return string.Create(CultureInfo.InvariantCulture, $"Silo ready: silo {options.SiloEndpoint}, gateway {options.GatewayEndpoint}, cluster {options.ClusterId}");
    }

    private static void ConfigureSilo(ISiloBuilder silo, SiloHostOptions options)
    {
        if (options.Redis is null)
        {
            silo.UseLocalhostClustering(options.SiloPort, options.GatewayPort, options.Primary, options.ServiceId, options.ClusterId);

            // UseLocalhostClustering advertises 127.0.0.1; --advertise replaces it.
            silo.Configure<EndpointOptions>(endpoints => endpoints.AdvertisedIPAddress = options.Advertise);
        }
        else
        {
            // NOTE: no test covers Redis clustering, because the test machines run no Redis server.
            silo.UseRedisClustering(options.Redis);
            silo.Configure<ClusterOptions>(cluster =>
            {
                cluster.ClusterId = options.ClusterId;
                cluster.ServiceId = options.ServiceId;
            });
            silo.ConfigureEndpoints(options.Advertise, options.SiloPort, options.GatewayPort, listenOnAnyHostAddress: true);
        }

        silo.AddActivityPropagation();
        silo.AddPowerRetention(device => device.Threads = options.Threads);
        silo.AddDecodeSessionStorage(options.Redis);
        silo.UseComputeBackend(options.Device);
    }

    private static void WriteHelp(TextWriter output)
    {
        output.WriteLine("powerret-silo: runs one PowerRetention silo in the foreground until Ctrl+C or SIGTERM.");
        output.WriteLine();
        output.WriteLine("Usage: powerret-silo [options]");
        output.WriteLine();
        output.WriteLine("Options:");
        foreach (SiloOptionInfo option in SiloHostOptions.CommandLineOptions)
        {
            output.WriteLine($"  {option.Name} {option.ValueName}");
            output.WriteLine($"      {option.Description}");
        }

        output.WriteLine();
        output.WriteLine($"Each option can also be set by configuration key {SiloHostOptions.SectionName}:<Key>, for example the");
        output.WriteLine("environment variable PowerRetention__Silo__GatewayPort=30001; command-line options take precedence.");
        output.WriteLine("Prints 'Silo ready: ...' on the output stream once clients can connect. Logs go to the error stream.");
        output.WriteLine();
        output.WriteLine("Exit codes: 0 stopped cleanly, 1 failed, 2 invalid options.");
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Silo {SiloEndpoint} starting: gateway {GatewayEndpoint}, cluster {ClusterId}, service {ServiceId}, {Clustering} clustering with primary {Primary}")]
    private static partial void LogStarting(ILogger logger, string siloEndpoint, string gatewayEndpoint, string clusterId, string serviceId, string clustering, string primary);

    [LoggerMessage(Level = LogLevel.Information, Message = "Silo {SiloEndpoint} ready: gateway {GatewayEndpoint}, cluster {ClusterId}")]
    private static partial void LogReady(ILogger logger, string siloEndpoint, string gatewayEndpoint, string clusterId);

    [LoggerMessage(Level = LogLevel.Error, Message = "Silo {SiloEndpoint} failed to start")]
    private static partial void LogStartFailed(ILogger logger, string siloEndpoint, Exception error);

    [LoggerMessage(Level = LogLevel.Information, Message = "Silo {SiloEndpoint} stopped")]
    private static partial void LogStopped(ILogger logger, string siloEndpoint);
}
