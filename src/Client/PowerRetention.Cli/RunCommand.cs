using System.Diagnostics;
using PowerRetention.Kernels;

namespace PowerRetention.Cli;

/// <summary><c>powerret run</c>: computes retention over input files and writes Y to a file.</summary>
internal static class RunCommand
{
    /// <summary>Name, usage and options.</summary>
    public static readonly CommandSpec Spec = new(
        "run",
        "Compute retention over input files and write the output Y.",
        [
            "powerret run --q Q.npy --k K.npy --v V.npy [--log-g G.npy] --out Y.npy [options]",
            "powerret run --input X.safetensors --out Y.safetensors|Y.npy [options]",
        ],
        "Reads Q (b, t, hq, d), K (b, t, h, d), V (b, t, h, e) and optional log-gates log_G (b, t, h), all memory-mapped, " +
        "and writes Y (b, t, hq, e) in the inputs' data type straight into the output file. The output appears under " +
        "its name only when the run succeeds. A .safetensors input contains tensors named q, k, v and optionally log_g, " +
        "and a .safetensors output contains one tensor named y. bf16 data needs .safetensors, because .npy has no bfloat16 dtype.",
        [
            new("--q", "FILE", "Queries Q (b, t, hq, d), .npy of f32 or f16."),
            new("--k", "FILE", "Keys K (b, t, h, d), .npy of the same dtype as Q, with hq a multiple of h."),
            new("--v", "FILE", "Values V (b, t, h, e), .npy of the same dtype as Q."),
            new("--log-g", "FILE", "Log-gates log_G (b, t, h), .npy of f32 or f16, every value <= 0, used as float32. Default: no gating."),
            new("--input", "FILE", "A .safetensors file with tensors q, k, v and optionally log_g, in place of --q, --k, --v and --log-g."),
            new("--out", "FILE", "Output Y (b, t, hq, e): .npy (f32 or f16) or .safetensors (tensor y). Required."),
            new("--deg", "P", "Degree p of the power, even and >= 2. Default 2."),
            new("--chunk-size", "TOKENS", "Tokens per chunk, or 0 for the quadratic form over the whole sequence. Default 1024."),
            new("--scale", "S", "Scale applied to q . k before the power, finite and > 0. Default 1/sqrt(d)."),
            new("--switch-over", "TOKENS", "Sequences shorter than this many tokens use the quadratic form. Default: never."),
            new("--initial-state", "FILE", "State file whose state acts as everything before the sequence. Default: zero state."),
            new("--final-state", "FILE", "Writes the state after the last token to this file, for a later --initial-state."),
            new("--threads", "N", "Maximum worker threads. Default: every core."),
        ]);

    /// <summary>Runs the command.</summary>
    public static async Task<int> ExecuteAsync(ParsedOptions options, CommandContext context)
    {
        RunSettings settings = RunSettings.From(options);
        using InputFiles inputs = OpenInputs(options);
        CheckOutputIsNotAnInput(settings, inputs);
        RetentionProblem.CheckShapes(inputs.Q, inputs.K, inputs.V, inputs.LogG);

        RetentionState? initialState = settings.InitialStatePath is null ? null : StateFiles.Read(settings.InitialStatePath);
        int batch = inputs.Q.Dim(0), time = inputs.Q.Dim(1), queryHeads = inputs.Q.Dim(2), valueDim = inputs.V.Dim(3);
        int[] outputShape = [batch, time, queryHeads, valueDim];

        using OutputFile output = OutputFile.Create(settings.OutputPath, inputs.Q.DataType, outputShape);
        var job = new RetentionJob(inputs.Q, inputs.K, inputs.V, inputs.LogG, initialState, settings.Options, output.Tensor);
        IRetentionBackend backend = CommandContext.CreateBackend();
        long tokenHeads = (long)batch * time * queryHeads;
        var progress = new ProgressDisplay(context.Error, context.Settings, "run", tokenHeads);

        Stopwatch clock = Stopwatch.StartNew();
        RetentionResult result;
        try
        {
            result = await backend.ComputeAsync(job, progress, context.CancellationToken).ConfigureAwait(false);
        }
        finally
        {
            progress.Finish();
        }

        clock.Stop();

        if (settings.FinalStatePath is not null && result.FinalState is not null)
        {
            StateFiles.Write(settings.FinalStatePath, result.FinalState);
        }

        output.Commit();
        WriteSummary(context.Output, inputs, settings, backend, outputShape, clock.Elapsed, result.FinalState);
        return 0;
    }

    private static InputFiles OpenInputs(ParsedOptions options)
    {
        string? input = options.GetString("--input");
        string[] separate = ["--q", "--k", "--v", "--log-g"];
        if (input is not null)
        {
            string? conflicting = separate.FirstOrDefault(options.Has);
            if (conflicting is not null)
            {
                throw options.Error($"give either --input or --q/--k/--v/--log-g, not both (found --input and {conflicting})");
            }

            return InputFiles.OpenSafetensors(input);
        }

        if (!options.Has("--q") && !options.Has("--k") && !options.Has("--v"))
        {
            throw options.Error("missing inputs: give --q, --k and --v (.npy files) or --input (a .safetensors file)");
        }

        return InputFiles.OpenNpy(options.GetRequiredString("--q"), options.GetRequiredString("--k"), options.GetRequiredString("--v"), options.GetString("--log-g"));
    }

    private static void CheckOutputIsNotAnInput(RunSettings settings, InputFiles inputs)
    {
        string[] outputs = settings.FinalStatePath is null ? [settings.OutputPath] : [settings.OutputPath, settings.FinalStatePath];
        string[] reads = settings.InitialStatePath is null ? [.. inputs.Paths] : [.. inputs.Paths, Path.GetFullPath(settings.InitialStatePath)];
        if (settings.FinalStatePath is not null && Path.GetFullPath(settings.FinalStatePath) == Path.GetFullPath(settings.OutputPath))
        {
            throw new UsageException($"--out and --final-state both name {settings.OutputPath}. Give them different files.");
        }

        foreach (string output in outputs)
        {
            if (reads.Contains(Path.GetFullPath(output), StringComparer.Ordinal))
            {
                throw new UsageException($"{output} is both an input and an output. Write the output to another file.");
            }
        }
    }

    private static void WriteSummary(TextWriter writer, InputFiles inputs, RunSettings settings, IRetentionBackend backend, int[] outputShape, TimeSpan elapsed, RetentionState? finalState)
    {
        int time = inputs.Q.Dim(1), keyDim = inputs.Q.Dim(3);
        long tokenHeads = (long)outputShape[0] * outputShape[1] * outputShape[2];
        RetentionOptions options = settings.Options;
        string logG = inputs.LogG is null ? "no gating" : $"log_G {Tensor.FormatShape(inputs.LogG.Shape)}";
        long expandedDim = SymmetricPowerBasis.ExpandedDimOf(keyDim, options.Degree);
        float scale = options.Scale ?? (1f / MathF.Sqrt(keyDim));
        string scaleSource = options.Scale is null ? " (1/sqrt(d))" : string.Empty;
        string threads = options.MaxDegreeOfParallelism is int n ? Units.Invariant($"{n} threads") : Units.Invariant($"{Environment.ProcessorCount} threads");

        writer.WriteLine($"inputs:  Q {Tensor.FormatShape(inputs.Q.Shape)}, K {Tensor.FormatShape(inputs.K.Shape)}, V {Tensor.FormatShape(inputs.V.Shape)}, {logG}, {inputs.Q.DataType.ShortName()}");
        writer.WriteLine(Units.Invariant($"options: degree {options.Degree} (D = {expandedDim}), {DescribeChunking(options, time)}, scale {scale:G6}{scaleSource}"));
        writer.WriteLine(Units.Invariant($"run:     {time} tokens, {tokenHeads:N0} token-heads in {elapsed.TotalSeconds:0.000} s, {Units.Rate(tokenHeads / Math.Max(elapsed.TotalSeconds, 1e-9))} token-heads/s ({backend.Description}, {threads})"));
        writer.WriteLine($"output:  {settings.OutputPath}: Y {Tensor.FormatShape(outputShape)} {inputs.Q.DataType.ShortName()}");
        if (settings.FinalStatePath is not null && finalState is not null)
        {
            writer.WriteLine($"state:   {settings.FinalStatePath}: final state, b={finalState.Batch}, h={finalState.Heads}, D={finalState.ExpandedDim}, e={finalState.ValueDim}, {Units.Bytes(finalState.SizeInBytes)}");
        }
    }

    /// <summary>Describes the chunking that <see cref="Retention.Compute"/> resolves from the options for t tokens.</summary>
    private static string DescribeChunking(RetentionOptions options, int time)
    {
        if (options.ChunkSize == 0)
        {
            return "chunk size 0 (quadratic form)";
        }

        if (options.SwitchOverSeqLen is int switchOver && time < switchOver)
        {
            return Units.Invariant($"quadratic form ({time} tokens < --switch-over {switchOver})");
        }

        return options.ChunkSize >= time
            ? Units.Invariant($"chunk size {options.ChunkSize} (one chunk of {time} tokens)")
            : Units.Invariant($"chunk size {options.ChunkSize}");
    }

    /// <summary>The parsed options of a run.</summary>
    private sealed record RunSettings(string OutputPath, string? InitialStatePath, string? FinalStatePath, RetentionOptions Options)
    {
        public static RunSettings From(ParsedOptions options)
        {
            string output = options.GetRequiredString("--out");
            OutputFile.IsSafetensors(output);
            int degree = options.GetInt("--deg", 2, minimum: int.MinValue);
            if (degree < 2 || degree % 2 != 0)
            {
                throw options.Error($"invalid value {degree} for --deg: the degree must be even and at least 2");
            }

            string? finalState = options.GetString("--final-state");
            var retentionOptions = new RetentionOptions
            {
                Degree = degree,
                ChunkSize = options.GetInt("--chunk-size", RetentionOptions.DefaultChunkSize, minimum: 0),
                Scale = options.GetOptionalPositiveFloat("--scale"),
                SwitchOverSeqLen = options.GetOptionalInt("--switch-over", minimum: 0),
                MaxDegreeOfParallelism = options.GetOptionalInt("--threads", minimum: 1),
                ReturnFinalState = finalState is not null,
            };
            return new RunSettings(output, options.GetString("--initial-state"), finalState, retentionOptions);
        }
    }
}
