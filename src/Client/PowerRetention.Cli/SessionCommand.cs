using PowerRetention.Client;
using PowerRetention.Grains;
using PowerRetention.Kernels;
using PowerRetention.Kernels.IO;

namespace PowerRetention.Cli;

/// <summary>
/// <c>powerret session start|step|export|drop</c>: manages a decode session that lives in a running
/// cluster, so each call is a separate process that names the session by its id.
/// </summary>
internal static class SessionCommand
{
    private static readonly OptionSpec[] s_clusterOptions =
    [
        new("--cluster", "HOST:PORT[,...]", "Gateways of the running cluster that hosts the session, comma-separated. Required."),
        new("--cluster-id", "ID", $"Cluster id of the silos. Default {RetentionClient.DefaultClusterId}."),
        new("--service-id", "ID", $"Service id of the silos. Default {RetentionClient.DefaultServiceId}."),
        new("--connect-timeout", "SECONDS", "Time to wait for a gateway to accept the connection. Default 15."),
    ];

    private static readonly OptionSpec s_session = new("--session", "ID", "The session's id. start picks a new one when it is missing; the other subcommands need it.");

    private static readonly CommandSpec s_start = Subcommand("start",
    [
        new("--from-state", "FILE", "Start from this state file; it sets b, h, d, e and p."),
        new("--from-job", "JOB_ID", "Start from the final state of a completed job on the same cluster that kept it: the id 'powerret run --cluster ... --final-state FILE' prints. It sets b, h, d, e and p."),
        new("--heads", "H", "Key/value heads of an empty session. Required without --from-state or --from-job."),
        new("--dim", "D", "Key dimension of an empty session. Required without --from-state or --from-job."),
        new("--value-dim", "E", "Value dimension. Default: the key dimension."),
        new("--batch", "B", "Batch size. Default 1."),
        new("--deg", "P", "Degree p of the power, even and >= 2. Default 2."),
        new("--query-heads", "HQ", "Query heads, a multiple of the key/value heads. Default: the key/value heads."),
        new("--scale", "S", "Scale applied to q . k before the power, finite and > 0. Default 1/sqrt(d)."),
        new("--switch-over", "TOKENS", $"Tokens kept in the cache before it is folded into the state. Default {DecodeSessionSpec.DefaultSwitchOverSeqLen}."),
    ]);

    private static readonly CommandSpec s_step = Subcommand("step",
    [
        new("--q", "FILE", "Queries Q (b, n, hq, d) of the new tokens, .npy of f32 or f16."),
        new("--k", "FILE", "Keys K (b, n, h, d), .npy of the same dtype as Q."),
        new("--v", "FILE", "Values V (b, n, h, e), .npy of the same dtype as Q."),
        new("--log-g", "FILE", "Log-gates log_G (b, n, h), .npy, every value <= 0. Default: no gating."),
        new("--out", "FILE", "Output Y (b, n, hq, e), .npy in the dtype of Q. Required."),
        new("--step-id", "GUID", "The step's id. Repeat a failed call with the same id: a step already applied returns its stored output instead of being applied twice. Default: a new id."),
    ]);

    private static readonly CommandSpec s_export = Subcommand("export",
    [
        new("--out", "FILE", "State file to write, with the cache folded in; it appears only once complete. Required."),
    ]);

    private static readonly CommandSpec s_drop = Subcommand("drop", []);

    /// <summary>Name, usage and the options of every subcommand, for help.</summary>
    public static readonly CommandSpec Spec = new(
        "session",
        "Start, step, export or drop a decode session in a running cluster.",
        [
            "powerret session start --cluster HOST:PORT (--from-state FILE | --from-job JOB_ID | --heads H --dim D) [options]",
            "powerret session step --cluster HOST:PORT --session ID --q Q.npy --k K.npy --v V.npy [--log-g G.npy] --out Y.npy",
            "powerret session export --cluster HOST:PORT --session ID --out STATE.bin",
            "powerret session drop --cluster HOST:PORT --session ID",
        ],
        "A decode session generates token by token: it keeps the state (S, s), a cache of recent keys and values and the " +
        "position in a grain of a running cluster (powerret silo), persisted in the silos' session storage after every " +
        "step, so it survives the loss of the silo that hosts it. start prints the session's id; step appends n tokens, " +
        "each query seeing the keys before it and its own, and writes their outputs; export writes the state after every " +
        "token as a state file for run --initial-state or session start --from-state; drop deletes the session.",
        s_clusterOptions.Append(s_session).Concat(s_start.Options).Concat(s_step.Options.Where(o => o.Name != "--out")).Concat(s_export.Options).DistinctBy(o => o.Name).ToArray());

    /// <summary>Runs the subcommand named by the first argument.</summary>
    /// <param name="arguments">The arguments after "session": the subcommand, then its options.</param>
    /// <param name="context">Output, error stream and cancellation.</param>
    /// <exception cref="UsageException">The subcommand or an option is missing or invalid, or the cluster cannot be reached.</exception>
    public static async Task<int> ExecuteAsync(IReadOnlyList<string> arguments, CommandContext context)
    {
        string? name = arguments.Count > 0 ? arguments[0] : null;
        CommandSpec spec = name switch
        {
            "start" => s_start,
            "step" => s_step,
            "export" => s_export,
            "drop" => s_drop,
            _ => throw new UsageException($"{(name is null ? "missing subcommand" : $"unknown subcommand '{name}'")}: expected start, step, export or drop. Run 'powerret session --help' for the options."),
        };

        ParsedOptions options = ParsedOptions.Parse(spec, arguments.Skip(1).ToArray());
        string? sessionId = options.GetString("--session");
        if (spec != s_start && sessionId is null)
        {
            throw options.Error("missing required option --session ID");
        }

        await using RetentionClient client = await ConnectAsync(options, context.CancellationToken).ConfigureAwait(false);
        return spec == s_start ? await StartAsync(client, options, sessionId, context).ConfigureAwait(false)
            : spec == s_step ? await StepAsync(client, options, sessionId!, context).ConfigureAwait(false)
            : spec == s_export ? await ExportAsync(client, options, sessionId!, context).ConfigureAwait(false)
            : await DropAsync(client, sessionId!, context).ConfigureAwait(false);
    }

    private static async Task<int> StartAsync(RetentionClient client, ParsedOptions options, string? sessionId, CommandContext context)
    {
        string? statePath = options.GetString("--from-state");
        string? jobText = options.GetString("--from-job");
        if (statePath is not null && jobText is not null)
        {
            throw options.Error("--from-state and --from-job conflict: give one source");
        }

        var spec = new DecodeSessionSpec
        {
            Batch = options.GetOptionalInt("--batch", minimum: 1),
            Heads = options.GetOptionalInt("--heads", minimum: 1),
            QueryHeads = options.GetOptionalInt("--query-heads", minimum: 1),
            KeyDim = options.GetOptionalInt("--dim", minimum: 1),
            ValueDim = options.GetOptionalInt("--value-dim", minimum: 1),
            Degree = options.GetOptionalInt("--deg", minimum: 2),
            Scale = options.GetOptionalPositiveFloat("--scale"),
            SwitchOverSeqLen = options.GetInt("--switch-over", DecodeSessionSpec.DefaultSwitchOverSeqLen, minimum: 1),
        };

        DecodeSession session;
        try
        {
            session = await StartSessionAsync(client, options, spec, statePath, jobText, sessionId, context.CancellationToken).ConfigureAwait(false);
        }
        catch (InvalidOperationException error)
        {
            // The id is taken: a user error, reported like bad usage.
            throw new UsageException(error.Message);
        }

        DecodeSessionInfo info = session.Info;
        context.Output.WriteLine(session.Id);
        context.Error.WriteLine(Units.Invariant(
            $"Session {session.Id} started from {info.Origin} on {client.Description}: b={info.Batch}, h={info.Heads}, hq={info.QueryHeads}, d={info.KeyDim}, e={info.ValueDim}, p={info.Degree}, switch-over {info.SwitchOverSeqLen}, state {Units.Bytes(info.StateBytes)}."));
        return 0;
    }

    private static Task<DecodeSession> StartSessionAsync(RetentionClient client, ParsedOptions options, DecodeSessionSpec spec, string? statePath, string? jobText, string? sessionId, CancellationToken cancellationToken)
    {
        if (statePath is not null)
        {
            return client.StartSessionFromStateFileAsync(statePath, spec, sessionId, cancellationToken);
        }

        if (jobText is not null)
        {
            Guid jobId = Guid.TryParse(jobText, out Guid parsed) ? parsed : throw options.Error($"invalid value '{jobText}' for --from-job: expected a job id (GUID)");
            return client.StartSessionFromJobAsync(jobId, spec, sessionId, cancellationToken);
        }

        if (spec.Heads is null || spec.KeyDim is null)
        {
            throw options.Error("an empty session needs --heads and --dim (or start it --from-state or --from-job)");
        }

        return client.StartSessionAsync(spec, sessionId, cancellationToken);
    }

    private static async Task<int> StepAsync(RetentionClient client, ParsedOptions options, string sessionId, CommandContext context)
    {
        string output = options.GetRequiredString("--out");
        Guid? stepId = null;
        if (options.GetString("--step-id") is string stepText)
        {
            stepId = Guid.TryParse(stepText, out Guid parsed) ? parsed : throw options.Error($"invalid value '{stepText}' for --step-id: expected a GUID");
        }

        using Tensor q = NpyFile.Read(options.GetRequiredString("--q"));
        using Tensor k = NpyFile.Read(options.GetRequiredString("--k"));
        using Tensor v = NpyFile.Read(options.GetRequiredString("--v"));
        using Tensor? logG = options.GetString("--log-g") is string gatePath ? NpyFile.Read(gatePath) : null;
        DecodeSession session = await OpenAsync(client, sessionId, context.CancellationToken).ConfigureAwait(false);
        var request = new DecodeStepRequest(
            stepId ?? Guid.NewGuid(),
            RawTensor.FromTensor(q),
            RawTensor.FromTensor(k),
            RawTensor.FromTensor(v),
            logG is null ? null : RawTensor.FromTensor(logG));

        DecodeStepResult result = await session.StepAsync(request, context.CancellationToken).ConfigureAwait(false);
        using Tensor y = result.Output.ToTensor("Y");
        NpyFile.Write(output, y);
        context.Error.WriteLine(Units.Invariant(
            $"Session {sessionId} step {result.StepId}: {y.Dim(1)} token{(y.Dim(1) == 1 ? string.Empty : "s")}, now at position {result.Position}{(result.Repeated ? " (already applied: its stored output was returned)" : string.Empty)}; wrote {output}."));
        return 0;
    }

    private static async Task<int> ExportAsync(RetentionClient client, ParsedOptions options, string sessionId, CommandContext context)
    {
        string output = options.GetRequiredString("--out");
        DecodeSession session = await OpenAsync(client, sessionId, context.CancellationToken).ConfigureAwait(false);
        await session.ExportAsync(output, context.CancellationToken).ConfigureAwait(false);
        context.Error.WriteLine(Units.Invariant($"Session {sessionId} exported at position {session.Position} to {output} ({Units.Bytes(new FileInfo(output).Length)})."));
        return 0;
    }

    private static async Task<int> DropAsync(RetentionClient client, string sessionId, CommandContext context)
    {
        DecodeSession session = await OpenAsync(client, sessionId, context.CancellationToken).ConfigureAwait(false);
        await session.DropAsync(context.CancellationToken).ConfigureAwait(false);
        context.Error.WriteLine($"Session {sessionId} dropped.");
        return 0;
    }

    private static async Task<DecodeSession> OpenAsync(RetentionClient client, string sessionId, CancellationToken cancellationToken)
    {
        try
        {
            return await client.OpenSessionAsync(sessionId, cancellationToken).ConfigureAwait(false);
        }
        catch (InvalidOperationException error)
        {
            throw new UsageException($"{error.Message} Check --session.");
        }
    }

    private static async Task<RetentionClient> ConnectAsync(ParsedOptions options, CancellationToken cancellationToken)
    {
        string text = options.GetRequiredString("--cluster");
        string[] gateways = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (gateways.Length == 0)
        {
            throw options.Error($"invalid value '{text}' for --cluster: expected HOST:PORT[,HOST:PORT...]");
        }

        float seconds = options.GetOptionalPositiveFloat("--connect-timeout") ?? 15f;
        try
        {
            return await RetentionClient.ConnectAsync(
                gateways,
                TimeSpan.FromSeconds(seconds),
                options.GetString("--cluster-id") ?? RetentionClient.DefaultClusterId,
                options.GetString("--service-id") ?? RetentionClient.DefaultServiceId,
                cancellationToken).ConfigureAwait(false);
        }
        catch (RetentionJobException error)
        {
            throw new UsageException($"{error.Message} Check that the silos are running and that --cluster names their gateway ports.");
        }
        catch (ArgumentException error)
        {
            throw new UsageException($"invalid value '{text}' for --cluster: {error.Message}");
        }
    }

    private static CommandSpec Subcommand(string name, OptionSpec[] options) => new(
        $"session {name}",
        string.Empty,
        [],
        string.Empty,
        s_clusterOptions.Append(s_session).Concat(options).ToArray());
}
