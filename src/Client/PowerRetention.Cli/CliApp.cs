using PowerRetention.Kernels.IO;

namespace PowerRetention.Cli;

/// <summary>
/// The <c>powerret</c> command line, callable in-process: parses the arguments, runs the command and maps
/// failures to exit codes. 0: done. 2: bad usage or bad input, reported in one line on the error stream.
/// 1: anything else, including cancellation. The stack trace is printed only with --verbose.
/// </summary>
public static class CliApp
{
    private static readonly CommandSpec[] s_commands = [RunCommand.Spec, SynthCommand.Spec, BenchCommand.Spec, DemoCommand.Spec, SiloCommand.Spec, SessionCommand.Spec];

    /// <summary>Runs the command line with plain progress lines, as when the error stream is redirected.</summary>
    /// <param name="args">The arguments, command first.</param>
    /// <param name="output">Receives results and help.</param>
    /// <param name="error">Receives progress and error messages.</param>
    /// <param name="cancellationToken">Stops a running command, which then exits with code 1 and leaves no partial output file.</param>
    /// <returns>The exit code.</returns>
    public static Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken) =>
        RunAsync(args, output, error, new CliSettings(), cancellationToken);

    /// <summary>Runs the command line.</summary>
    /// <param name="args">The arguments, command first.</param>
    /// <param name="output">Receives results and help.</param>
    /// <param name="error">Receives progress and error messages.</param>
    /// <param name="settings">How progress is shown.</param>
    /// <param name="cancellationToken">Stops a running command, which then exits with code 1 and leaves no partial output file.</param>
    /// <returns>The exit code.</returns>
    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CliSettings settings, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        ArgumentNullException.ThrowIfNull(settings);

        if (args.Length == 0)
        {
            HelpText.WriteProgramHelp(error, s_commands);
            return 2;
        }

        string name = args[0];
        if (name is "--help" or "-h" or "help")
        {
            return WriteHelp(args.Length > 1 ? args[1] : null, output, error);
        }

        CommandSpec? command = s_commands.FirstOrDefault(c => c.Name == name);
        if (command is null)
        {
            error.WriteLine($"powerret: unknown command '{name}'. Run 'powerret --help' for the commands.");
            return 2;
        }

        string[] rest = args[1..];
        if (rest.Contains("--help") || rest.Contains("-h"))
        {
            HelpText.WriteCommandHelp(output, command);
            return 0;
        }

        bool verbose = rest.Contains("--verbose");
        try
        {
            // Session commands take a subcommand (start, step, export, drop) before their options.
            if (command.Name == "session")
            {
                return await SessionCommand.ExecuteAsync(rest, new CommandContext(output, error, settings, cancellationToken)).ConfigureAwait(false);
            }

            ParsedOptions options = ParsedOptions.Parse(command, rest);
            var context = new CommandContext(output, error, settings, cancellationToken);
            return command.Name switch
            {
                "run" => await RunCommand.ExecuteAsync(options, context).ConfigureAwait(false),
                "synth" => await SynthCommand.ExecuteAsync(options, context).ConfigureAwait(false),
                "bench" => await BenchCommand.ExecuteAsync(options, context).ConfigureAwait(false),
                "demo" => await DemoCommand.ExecuteAsync(options, context).ConfigureAwait(false),
                "silo" => await SiloCommand.ExecuteAsync(options, context).ConfigureAwait(false),
                _ => throw new InvalidOperationException($"Command '{command.Name}' has no implementation."),
            };
        }
        catch (Exception exception)
        {
            return ReportFailure(command.Name, Unwrap(exception), error, verbose, cancellationToken);
        }
    }

    private static int WriteHelp(string? commandName, TextWriter output, TextWriter error)
    {
        if (commandName is null)
        {
            HelpText.WriteProgramHelp(output, s_commands);
            return 0;
        }

        CommandSpec? command = s_commands.FirstOrDefault(c => c.Name == commandName);
        if (command is null)
        {
            error.WriteLine($"powerret: unknown command '{commandName}'. Run 'powerret --help' for the commands.");
            return 2;
        }

        HelpText.WriteCommandHelp(output, command);
        return 0;
    }

    private static int ReportFailure(string commandName, Exception exception, TextWriter error, bool verbose, CancellationToken cancellationToken)
    {
        if (exception is OperationCanceledException && cancellationToken.IsCancellationRequested)
        {
            error.WriteLine($"powerret {commandName}: cancelled.");
            return 1;
        }

        bool badInput = IsBadInput(exception);
        string message = OneLine(exception);
        error.WriteLine(badInput
            ? $"powerret {commandName}: {message}"
            : $"powerret {commandName}: failed with {exception.GetType().Name}: {message}{(verbose ? string.Empty : " (run with --verbose for the stack trace)")}");
        if (verbose)
        {
            error.WriteLine(exception.ToString());
        }

        return badInput ? 2 : 1;
    }

    /// <summary>Returns whether the exception means the command or its input files are wrong.</summary>
    private static bool IsBadInput(Exception exception) => exception
        is UsageException
        or ArgumentException
        or FileFormatException
        or FileNotFoundException
        or DirectoryNotFoundException
        or UnauthorizedAccessException
        or InsufficientMemoryException;

    /// <summary>
    /// Returns the first inner exception of an <see cref="AggregateException"/>: parallel loops wrap the
    /// failure of each worker, and these are usually the same error.
    /// </summary>
    private static Exception Unwrap(Exception exception) =>
        exception is AggregateException aggregate && aggregate.Flatten().InnerExceptions.Count > 0
            ? aggregate.Flatten().InnerExceptions[0]
            : exception;

    /// <summary>
    /// Returns the message on one line. <see cref="ArgumentException.Message"/> appends " (Parameter 'name')"
    /// and <see cref="ArgumentOutOfRangeException"/> adds the actual value on a second line. Both are dropped
    /// because the kernels' messages already name the tensor and the value.
    /// </summary>
    private static string OneLine(Exception exception)
    {
        string message = exception.Message;
        int newline = message.IndexOfAny(['\r', '\n']);
        if (exception is ArgumentException && newline >= 0)
        {
            message = message[..newline];
        }

        if (exception is ArgumentException { ParamName: string parameter })
        {
            string suffix = $" (Parameter '{parameter}')";
            if (message.EndsWith(suffix, StringComparison.Ordinal))
            {
                message = message[..^suffix.Length];
            }
        }

        return message.ReplaceLineEndings(" ").Trim();
    }
}
