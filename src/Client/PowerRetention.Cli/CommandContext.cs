namespace PowerRetention.Cli;

/// <summary>Where a command writes and what can stop it.</summary>
/// <param name="Output">Results and summaries.</param>
/// <param name="Error">Progress and error messages.</param>
/// <param name="Settings">Progress style and timing.</param>
/// <param name="CancellationToken">Cancelled by Ctrl+C.</param>
internal sealed record CommandContext(TextWriter Output, TextWriter Error, CliSettings Settings, CancellationToken CancellationToken)
{
    /// <summary>Creates the in-process backend of <c>bench</c> and <c>run --local</c>; cluster runs use <see cref="ClusterBackend"/>.</summary>
    public static IRetentionBackend CreateBackend() => new LocalBackend();
}
