using System.Diagnostics;
using PowerRetention.Client;
using PowerRetention.Kernels;
using GrainInputFiles = PowerRetention.Grains.InputFiles;

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
        "and a .safetensors output contains one tensor named y. bf16 data needs .safetensors, because .npy has no bfloat16 dtype. " +
        "By default the job runs on a one-silo Orleans cluster started inside this process, which cuts the sequence into " +
        "segments of whole chunks and passes states between them. --cluster sends it to running silos (powerret silo), " +
        "which must be able to read the input files and write the output file under the same paths. --local computes " +
        "in this process without Orleans.",
        [
            new("--q", "FILE", "Queries Q (b, t, hq, d), .npy of f32 or f16."),
            new("--k", "FILE", "Keys K (b, t, h, d), .npy of the same dtype as Q, with hq a multiple of h."),
            new("--v", "FILE", "Values V (b, t, h, e), .npy of the same dtype as Q."),
            new("--log-g", "FILE", "Log-gates log_G (b, t, h), .npy of f32 or f16, every value <= 0, used as float32. Default: no gating."),
            new("--input", "FILE", "A .safetensors file with tensors q, k, v and optionally log_g, in place of --q, --k, --v and --log-g."),
            new("--out", "FILE", "Output Y (b, t, hq, e): .npy (f32 or f16) or .safetensors (tensor y). Required."),
            new("--deg", "P", "Degree p of the power, even and >= 2. Default 2."),
            new("--chunk-size", "TOKENS", "Tokens per chunk, or 0 for the quadratic form over the whole sequence. Default: the fastest size for the shape, picked by the library and printed in the summary."),
            new("--scale", "S", "Scale applied to q . k before the power, finite and > 0. Default 1/sqrt(d)."),
            new("--switch-over", "TOKENS", "Sequences shorter than this many tokens use the quadratic form. Default: never."),
            new("--initial-state", "FILE", "State file whose state acts as everything before the sequence. Default: zero state."),
            new("--final-state", "FILE", "Writes the state after the last token to this file, for a later --initial-state."),
            new("--threads", "N", "Maximum worker threads of --local or of the embedded silo. Default: every core."),
            new("--segment-tokens", "N", "Tokens per segment on a cluster, rounded up to whole chunks; 0 lets the coordinator choose. Default 0."),
            new("--cluster", "HOST:PORT[,...]", "Gateways of a running cluster to run the job on, comma-separated. Default: an embedded silo."),
            new("--cluster-id", "ID", $"Cluster id of the --cluster silos. Default {RetentionClient.DefaultClusterId}."),
            new("--service-id", "ID", $"Service id of the --cluster silos. Default {RetentionClient.DefaultServiceId}."),
            new("--connect-timeout", "SECONDS", "Time to wait for a --cluster gateway to accept the connection. Default 15."),
            new("--local", null, "Compute in this process without Orleans; the same as --backend local."),
            new("--device", "NAME", "Kernels of a --local run: auto (CUDA when a device initialises, else the CPU), cpu or cuda. Default cpu. Silos choose theirs with 'powerret silo --device'."),
            new("--backend", "NAME", "Where to compute: embedded (a silo in this process), cluster (needs --cluster) or local. Default embedded."),
        ]);

    /// <summary>Runs the command.</summary>
    public static async Task<int> ExecuteAsync(ParsedOptions options, CommandContext context)
    {
        RunSettings settings = RunSettings.From(options);
        using InputFiles inputs = OpenInputs(options);
        CheckOutputIsNotAnInput(settings, inputs);
        RetentionProblem.CheckShapes(inputs.Q, inputs.K, inputs.V, inputs.LogG);

        // Without --chunk-size the library picks the fastest size for the shape; resolving it here lets the
        // summary name it and sends the same size to a cluster.
        bool automaticChunk = settings.Options.ChunkSize is null;
        if (automaticChunk)
        {
            int chosen = ChunkSizeSelector.Choose(inputs.Q.Dim(3), inputs.V.Dim(3), settings.Options.Degree, inputs.LogG is not null, inputs.Q.Dim(1));
            settings = settings with { Options = settings.Options with { ChunkSize = chosen }, AutomaticChunkSize = true };
        }

        RetentionState? initialState = settings.InitialStatePath is null ? null : StateFiles.Read(settings.InitialStatePath);
        int batch = inputs.Q.Dim(0), time = inputs.Q.Dim(1), queryHeads = inputs.Q.Dim(2), valueDim = inputs.V.Dim(3);
        int[] outputShape = [batch, time, queryHeads, valueDim];

        return settings.Backend == RunBackend.Local
            ? await RunLocalAsync(context, settings, inputs, initialState, outputShape).ConfigureAwait(false)
            : await RunOnClusterAsync(options, context, settings, inputs, initialState, outputShape).ConfigureAwait(false);
    }

    private static async Task<int> RunLocalAsync(CommandContext context, RunSettings settings, InputFiles inputs, RetentionState? initialState, int[] outputShape)
    {
        using PowerRetention.Kernels.Gpu.BackendChoice device = PowerRetention.Kernels.Gpu.BackendSelector.Create(settings.Device);
        if (settings.Device != "cpu")
        {
            context.Error.WriteLine($"device:  {device.Backend.Name} ({device.Reason})");
        }

        using OutputFile output = OutputFile.Create(settings.OutputPath, inputs.Q.DataType, outputShape);
        var job = new RetentionJob(inputs.Q, inputs.K, inputs.V, inputs.LogG, initialState, settings.Options with { Backend = device.Backend }, output.Tensor);
        IRetentionBackend backend = CommandContext.CreateBackend();
        long tokenHeads = (long)outputShape[0] * outputShape[1] * outputShape[2];
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
        int threads = settings.Options.MaxDegreeOfParallelism ?? Environment.ProcessorCount;
        string where = Units.Invariant($"{backend.Description}, {threads} threads");
        WriteSummary(context.Output, inputs, settings, where, outputShape, clock.Elapsed, result.FinalState, job: null);
        return 0;
    }

    private static async Task<int> RunOnClusterAsync(ParsedOptions options, CommandContext context, RunSettings settings, InputFiles inputs, RetentionState? initialState, int[] outputShape)
    {
        OutputFile.CheckFormat(settings.OutputPath, inputs.Q.DataType);

        // A cluster reports bad values only as a failed job after starting it, so they are checked here first,
        // as the local backend does, to reject bad input before anything runs.
        RetentionProblem.Create(inputs.Q, inputs.K, inputs.V, inputs.LogG, initialState, settings.Options);

        context.CancellationToken.ThrowIfCancellationRequested();
        int time = outputShape[1];
        ProcessingOptions processing = settings.ToProcessingOptions(time);
        await using ClusterBackend backend = settings.Gateways is null
            ? await ClusterBackend.StartEmbeddedAsync(settings.Options.MaxDegreeOfParallelism, context.Settings, context.CancellationToken).ConfigureAwait(false)
            : await ClusterBackend.ConnectAsync(settings.Gateways, settings.ConnectTimeout, settings.ClusterId, settings.ServiceId, context.CancellationToken).ConfigureAwait(false);
        long tokenHeads = (long)outputShape[0] * outputShape[1] * outputShape[2];
        var progress = new ProgressDisplay(context.Error, context.Settings, "run", tokenHeads);

        Stopwatch clock = Stopwatch.StartNew();
        JobResult result;
        try
        {
            result = await backend.ProcessFilesAsync(JobInputs(options), settings.OutputPath, initialState, processing, progress, context.CancellationToken).ConfigureAwait(false);
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

        WriteSummary(context.Output, inputs, settings, backend.Description, outputShape, clock.Elapsed, result.FinalState, result);
        return 0;
    }

    /// <summary>Returns the input files of a cluster job as absolute paths, which every silo resolves the same way.</summary>
    private static GrainInputFiles JobInputs(ParsedOptions options)
    {
        static string? Full(string? path) => path is null ? null : Path.GetFullPath(path);
        return new GrainInputFiles(Full(options.GetString("--q")), Full(options.GetString("--k")), Full(options.GetString("--v")), Full(options.GetString("--log-g")), Full(options.GetString("--input")));
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

    private static void WriteSummary(TextWriter writer, InputFiles inputs, RunSettings settings, string where, int[] outputShape, TimeSpan elapsed, RetentionState? finalState, JobResult? job)
    {
        int time = inputs.Q.Dim(1), keyDim = inputs.Q.Dim(3);
        long tokenHeads = (long)outputShape[0] * outputShape[1] * outputShape[2];
        RetentionOptions options = settings.Options;
        string logG = inputs.LogG is null ? "no gating" : $"log_G {Tensor.FormatShape(inputs.LogG.Shape)}";
        long expandedDim = SymmetricPowerBasis.ExpandedDimOf(keyDim, options.Degree);
        float scale = options.Scale ?? (1f / MathF.Sqrt(keyDim));
        string scaleSource = options.Scale is null ? " (1/sqrt(d))" : string.Empty;

        writer.WriteLine($"inputs:  Q {Tensor.FormatShape(inputs.Q.Shape)}, K {Tensor.FormatShape(inputs.K.Shape)}, V {Tensor.FormatShape(inputs.V.Shape)}, {logG}, {inputs.Q.DataType.ShortName()}");
        writer.WriteLine(Units.Invariant($"options: degree {options.Degree} (D = {expandedDim}), {DescribeChunking(options, time, onCluster: job is not null, settings.AutomaticChunkSize)}, scale {scale:G6}{scaleSource}"));
        writer.WriteLine(Units.Invariant($"run:     {time} tokens, {tokenHeads:N0} token-heads in {elapsed.TotalSeconds:0.000} s, {Units.Rate(tokenHeads / Math.Max(elapsed.TotalSeconds, 1e-9))} token-heads/s ({where})"));
        if (job is not null)
        {
            writer.WriteLine(Units.Invariant($"cluster: job {job.JobId}: {DescribeSegments(job.Segments, job.SegmentTokens, time)}, {Units.Bytes(job.StateBytesMoved)} of state moved between grains, {job.SegmentRestarts} segment restarts"));
        }

        writer.WriteLine($"output:  {settings.OutputPath}: Y {Tensor.FormatShape(outputShape)} {inputs.Q.DataType.ShortName()}");
        if (settings.FinalStatePath is not null && finalState is not null)
        {
            writer.WriteLine($"state:   {settings.FinalStatePath}: final state, b={finalState.Batch}, h={finalState.Heads}, D={finalState.ExpandedDim}, e={finalState.ValueDim}, {Units.Bytes(finalState.SizeInBytes)}");
        }
    }

    /// <summary>Describes the chunking that <see cref="Retention.Compute"/> or a cluster resolves from the options for t tokens.</summary>
    private static string DescribeChunking(RetentionOptions options, int time, bool onCluster, bool automatic)
    {
        if (options.ChunkSize == 0)
        {
            return onCluster ? "chunk size 0 (quadratic form within each segment)" : "chunk size 0 (quadratic form)";
        }

        if (options.SwitchOverSeqLen is int switchOver && time < switchOver)
        {
            return Units.Invariant($"quadratic form ({time} tokens < --switch-over {switchOver})");
        }

        return options.ChunkSize >= time
            ? Units.Invariant($"chunk size {options.ChunkSize} (one chunk of {time} tokens)")
            : Units.Invariant($"chunk size {options.ChunkSize}{(automatic ? " (chosen automatically)" : string.Empty)}");
    }

    /// <summary>Describes a job's segments, naming the last one's length when it is shorter than the others.</summary>
    internal static string DescribeSegments(int segments, int segmentTokens, long time)
    {
        string text = Units.Invariant($"{segments} segment{(segments == 1 ? string.Empty : "s")} of {segmentTokens} tokens");
        long last = time - ((long)(segments - 1) * segmentTokens);
        return segments > 1 && last != segmentTokens ? Units.Invariant($"{text}, the last of {last}") : text;
    }
}
