namespace PowerRetention.Cli.Tests.Support;

/// <summary>The exit code and the text a <c>powerret</c> invocation wrote.</summary>
internal sealed record CliResult(int ExitCode, string Output, string Error)
{
    /// <summary>The non-empty lines written to the error stream.</summary>
    public string[] ErrorLines => Error.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>Both streams, for assertion messages.</summary>
    public override string ToString() => $"exit code {ExitCode}\n--- output ---\n{Output}\n--- error ---\n{Error}";
}

/// <summary>Runs <see cref="CliApp"/> in-process with captured streams.</summary>
internal static class CliRunner
{
    /// <summary>Settings of the runs: plain progress lines and the <see cref="SharedCluster"/>.</summary>
    public static CliSettings DefaultSettings => new() { EmbeddedCluster = SharedCluster.Client };

    public static CliResult Run(params string[] args) => Run(DefaultSettings, CancellationToken.None, args);

    public static CliResult Run(CliSettings settings, CancellationToken cancellationToken, params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        int code = CliApp.RunAsync(args, output, error, settings, cancellationToken).GetAwaiter().GetResult();
        return new CliResult(code, output.ToString(), error.ToString());
    }

    /// <summary>Runs the command and asserts that it succeeded.</summary>
    public static CliResult Succeed(params string[] args)
    {
        CliResult result = Run(args);
        Assert.True(result.ExitCode == 0, result.ToString());
        return result;
    }
}
