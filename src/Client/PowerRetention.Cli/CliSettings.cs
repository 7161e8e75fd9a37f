using PowerRetention.Client;

namespace PowerRetention.Cli;

/// <summary>How progress of a long computation is shown on the error stream.</summary>
public enum ProgressStyle
{
    /// <summary>No progress output.</summary>
    None,

    /// <summary>Plain lines, for logs and redirected output.</summary>
    Lines,

    /// <summary>A bar redrawn in place with carriage returns, for a terminal.</summary>
    Bar,
}

/// <summary>Settings of <see cref="CliApp"/> that depend on where it runs rather than on its arguments.</summary>
public sealed record CliSettings
{
    /// <summary>How progress is shown. Default <see cref="ProgressStyle.Lines"/>.</summary>
    public ProgressStyle Progress { get; init; } = ProgressStyle.Lines;

    /// <summary>Time a computation runs before any progress is shown, so short runs print none. Default 1 s.</summary>
    public TimeSpan ProgressDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Time after which another progress line is printed even if progress has not moved by another 10%.
    /// Default 2 s.
    /// </summary>
    public TimeSpan ProgressLineInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// A running cluster that <c>run</c> and <c>demo</c> use in place of starting their own embedded silo, unless
    /// --threads asks for a silo of a given size. The caller owns it and disposes it. Default null: each command
    /// starts and stops its own embedded silo.
    /// </summary>
    public RetentionClient? EmbeddedCluster { get; init; }
}
