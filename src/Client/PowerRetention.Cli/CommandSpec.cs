namespace PowerRetention.Cli;

/// <summary>One option of a command: its name, the placeholder of its value (null for a flag) and its help text.</summary>
internal sealed record OptionSpec(string Name, string? ValueName, string Description)
{
    /// <summary>True when the option takes no value.</summary>
    public bool IsFlag => ValueName is null;
}

/// <summary>A command: its name, one-line summary, usage lines, longer description and options.</summary>
internal sealed record CommandSpec(string Name, string Summary, IReadOnlyList<string> Usage, string Description, IReadOnlyList<OptionSpec> Options)
{
    /// <summary>Options every command accepts.</summary>
    public static readonly IReadOnlyList<OptionSpec> CommonOptions =
    [
        new("--verbose", null, "Print the stack trace of an unexpected error."),
        new("--help", null, "Print this help and exit."),
    ];

    /// <summary>The command's own options followed by the common ones.</summary>
    public IEnumerable<OptionSpec> AllOptions => Options.Concat(CommonOptions);
}
