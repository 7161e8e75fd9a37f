using System.Diagnostics;
using PowerRetention.Kernels;

namespace PowerRetention.Cli;

/// <summary><c>powerret bench</c>: times retention on synthetic inputs held in memory.</summary>
internal static class BenchCommand
{
    /// <summary>Name, usage and options.</summary>
    public static readonly CommandSpec Spec = new(
        "bench",
        "Time the computation on synthetic inputs held in memory.",
        ["powerret bench [--tokens 65536[,N...]] [--heads 8] [--dim 64] [--deg 2] [--chunk-size 1024|auto] [options]"],
        "For each sequence length, creates seeded inputs in memory, runs one untimed warm-up and then --repeat timed " +
        "runs, and prints one row: the best and median time in milliseconds, token-heads per second (b * t * hq " +
        "divided by the best time) and GFLOP/s from the best time. The operation count per query token-head is " +
        "(d + e)(c + 1) for in-chunk attention plus 2De + 2D for the state query, and per key/value token-head " +
        "2De + D for the state update, with D = C(d + p - 1, p) and c = min(chunk size, t), or t for chunk size 0.",
        [
            new("--tokens", "N[,N...]", "Sequence lengths t, comma-separated, one output row each. Default 65536."),
            new("--heads", "H", "Key/value heads h. Default 8."),
            new("--q-heads", "HQ", "Query heads hq, a multiple of h. Default h."),
            new("--dim", "D", "Key dimension d. Default 64."),
            new("--value-dim", "E", "Value dimension e. Default d."),
            new("--batch", "B", "Batch size b. Default 1."),
            new("--deg", "P", "Degree p, even and >= 2. Default 2."),
            new("--chunk-size", "TOKENS", "Tokens per chunk, 0 for the quadratic form over the whole sequence, or auto for the size the library picks for each row's shape. Default 1024."),
            new("--dtype", "TYPE", "Data type of Q, K, V and Y: f32, f16 or bf16. Default f32."),
            new("--gating", null, "Use log-gates."),
            new("--repeat", "N", "Timed runs per sequence length, after one warm-up. Default 3."),
            new("--threads", "N", "Maximum worker threads. Default: every core."),
        ]);

    /// <summary>Runs the command.</summary>
    public static async Task<int> ExecuteAsync(ParsedOptions options, CommandContext context)
    {
        int[] lengths = options.GetIntList("--tokens", 65536, minimum: 1);
        int heads = options.GetInt("--heads", 8, minimum: 1);
        int queryHeads = options.GetInt("--q-heads", heads, minimum: 1);
        int keyDim = options.GetInt("--dim", 64, minimum: 1);
        int valueDim = options.GetInt("--value-dim", keyDim, minimum: 1);
        int batch = options.GetInt("--batch", 1, minimum: 1);
        int degree = options.GetInt("--deg", 2, minimum: int.MinValue);
        string? chunkText = options.GetString("--chunk-size");
        bool automaticChunk = chunkText == "auto";
        if (chunkText is not null && !automaticChunk && !int.TryParse(chunkText, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out _))
        {
            throw options.Error($"invalid value '{chunkText}' for --chunk-size: expected a number of tokens or auto");
        }

        int chunkSize = automaticChunk ? RetentionOptions.DefaultChunkSize : options.GetInt("--chunk-size", RetentionOptions.DefaultChunkSize, minimum: 0);
        int repeat = options.GetInt("--repeat", 3, minimum: 1);
        int? threads = options.GetOptionalInt("--threads", minimum: 1);
        bool gating = options.HasFlag("--gating");
        DataType dataType = SynthCommand.ParseDataType(options);
        if (degree < 2 || degree % 2 != 0)
        {
            throw options.Error($"invalid value {degree} for --deg: the degree must be even and at least 2");
        }

        if (queryHeads % heads != 0)
        {
            throw options.Error($"--q-heads {queryHeads} must be a multiple of --heads {heads}");
        }

        var baseOptions = new RetentionOptions { Degree = degree, ChunkSize = chunkSize, MaxDegreeOfParallelism = threads };
        IRetentionBackend backend = CommandContext.CreateBackend();
        TextWriter writer = context.Output;
        long expandedDim = SymmetricPowerBasis.ExpandedDimOf(keyDim, degree);
        string gatingText = gating ? "gated" : "no gating";
        int threadCount = threads ?? Environment.ProcessorCount;
        writer.WriteLine(Units.Invariant($"bench: b={batch}, h={heads}, hq={queryHeads}, d={keyDim}, e={valueDim}, p={degree} (D={expandedDim}), {dataType.ShortName()}, {gatingText}"));
        writer.WriteLine(Units.Invariant($"       {backend.Description}, {threadCount} threads, 1 warm-up and {repeat} timed run{(repeat == 1 ? string.Empty : "s")} per row, with rates from the best time"));
        writer.WriteLine($"{"tokens",9} {"chunk",7} {"best ms",11} {"median ms",11} {"token-heads/s",14} {"GFLOP/s",9}");
        writer.Flush();

        foreach (int time in lengths)
        {
            RetentionInputs inputs = SyntheticInputs.Create(batch, time, heads, keyDim, queryHeads, valueDim, gating, seed: 42, dataType);
            Tensor output = Tensor.Zeros(dataType, batch, time, queryHeads, valueDim);
            if (automaticChunk)
            {
                chunkSize = ChunkSizeSelector.Choose(keyDim, valueDim, degree, gating, time);
            }

            RetentionOptions retentionOptions = baseOptions with { ChunkSize = chunkSize };
            var job = new RetentionJob(inputs.Q, inputs.K, inputs.V, inputs.LogG, null, retentionOptions, output);
            long tokenHeads = (long)batch * time * queryHeads;

            await TimeRunAsync(backend, job, context, $"bench t={time} warm-up", tokenHeads).ConfigureAwait(false);
            var milliseconds = new double[repeat];
            for (int i = 0; i < repeat; i++)
            {
                milliseconds[i] = await TimeRunAsync(backend, job, context, $"bench t={time} run {i + 1}/{repeat}", tokenHeads).ConfigureAwait(false);
            }

            Array.Sort(milliseconds);
            double best = milliseconds[0];
            double median = repeat % 2 == 1 ? milliseconds[repeat / 2] : (milliseconds[(repeat / 2) - 1] + milliseconds[repeat / 2]) / 2;
            double seconds = Math.Max(best / 1000, 1e-9);
            double flops = FlopModel.Count(batch, time, heads, queryHeads, keyDim, valueDim, degree, chunkSize);
            int chunk = FlopModel.EffectiveChunkSize(chunkSize, time);
            writer.WriteLine(Units.Invariant($"{time,9} {chunk,7} {best,11:0.0} {median,11:0.0} {Units.Rate(tokenHeads / seconds),14} {flops / seconds / 1e9,9:0.00}"));
            writer.Flush();
        }

        return 0;
    }

    private static async Task<double> TimeRunAsync(IRetentionBackend backend, RetentionJob job, CommandContext context, string label, long tokenHeads)
    {
        var progress = new ProgressDisplay(context.Error, context.Settings, label, tokenHeads);
        Stopwatch clock = Stopwatch.StartNew();
        try
        {
            await backend.ComputeAsync(job, progress, context.CancellationToken).ConfigureAwait(false);
            return clock.Elapsed.TotalMilliseconds;
        }
        finally
        {
            progress.Finish();
        }
    }
}
