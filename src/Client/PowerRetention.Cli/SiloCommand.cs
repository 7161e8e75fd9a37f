using PowerRetention.Silo;

namespace PowerRetention.Cli;

/// <summary><c>powerret silo</c>: runs one silo of a PowerRetention cluster in the foreground.</summary>
internal static class SiloCommand
{
    /// <summary>Name, usage and options, shared with <c>powerret-silo</c>.</summary>
    public static readonly CommandSpec Spec = new(
        "silo",
        "Run one silo of a cluster in the foreground until Ctrl+C.",
        ["powerret silo [--silo-port 11111] [--gateway-port 30000] [--primary HOST:PORT] [options]"],
        "Starts an Orleans silo that runs retention jobs sent by 'powerret run --cluster' and other clients, and prints " +
        "'Silo ready: silo HOST:PORT, gateway HOST:PORT, cluster ID' on the output once clients can connect. Logs go to " +
        "the error stream. Several silos on one machine form a cluster with localhost clustering: start the first " +
        "without --primary, then each other one with its own ports and --primary naming the first silo's silo port. " +
        "Silos on several machines use --redis and --advertise. Each option can also be set through configuration key " +
        $"{SiloHostOptions.SectionName}:<Key>, such as the environment variable PowerRetention__Silo__GatewayPort; " +
        "command-line options take precedence. Ctrl+C or SIGTERM stops the silo gracefully.",
        SiloHostOptions.CommandLineOptions.Select(o => new OptionSpec(o.Name, o.ValueName, o.Description)).ToArray());

    /// <summary>Runs the silo until the command is cancelled; returns 0 after a clean stop.</summary>
    public static async Task<int> ExecuteAsync(ParsedOptions options, CommandContext context)
    {
        SiloHostOptions siloOptions;
        try
        {
            siloOptions = SiloHostOptions.Create(options.Values, SiloHostOptions.LoadConfiguration());
        }
        catch (SiloOptionsException invalid)
        {
            throw options.Error(invalid.Message);
        }

        return await SiloHost.RunAsync(siloOptions, context.Output, context.CancellationToken).ConfigureAwait(false);
    }
}
