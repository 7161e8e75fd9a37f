namespace PowerRetention.Cli;

/// <summary>Where a command writes and what can stop it.</summary>
/// <param name="Output">Results and summaries.</param>
/// <param name="Error">Progress and error messages.</param>
/// <param name="Settings">Progress style and timing.</param>
/// <param name="CancellationToken">Cancelled by Ctrl+C.</param>
internal sealed record CommandContext(TextWriter Output, TextWriter Error, CliSettings Settings, CancellationToken CancellationToken)
{
    /// <summary>Creates the backend that runs computations, which is always this process's cores for now.</summary>
    public static IRetentionBackend CreateBackend() => new LocalBackend();
}
