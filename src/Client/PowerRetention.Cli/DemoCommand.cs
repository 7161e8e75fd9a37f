using System.Diagnostics;
using PowerRetention.Client;
using PowerRetention.Kernels;
using PowerRetention.Kernels.IO;
using GrainInputFiles = PowerRetention.Grains.InputFiles;

namespace PowerRetention.Cli;

/// <summary>
/// <c>powerret demo</c>: writes synthetic bf16 inputs, runs them through an embedded cluster and checks a sample
/// of the output against the quadratic form.
/// </summary>
internal static class DemoCommand
{
    /// <summary>Largest relative error of a sampled row that passes the check; rounding to bf16 alone gives up to about 2e-3.</summary>
    public const double ErrorLimit = 2e-2;

    /// <summary>Output tokens checked, spread over the sequence; every query head of each is checked.</summary>
    public const int SampleTokenCount = 16;

    /// <summary>Name, usage and options.</summary>
    public static readonly CommandSpec Spec = new(
        "demo",
        "Run a synthetic long sequence on an embedded cluster and check the output.",
        ["powerret demo [--tokens 1000000] [--heads 8] [--dim 64] [--deg 2] [--chunk-size N] [--segment-tokens N] [--keep]"],
        "Writes seeded bf16 inputs with log-gates (1 batch, t tokens, h heads, d = e) to a .safetensors file in a " +
        "temporary folder, runs them through a one-silo Orleans cluster started in this process, which writes the output " +
        "to another .safetensors file, and checks 16 output tokens spread over the sequence, the first and last included, " +
        "with every head, against the quadratic form evaluated in float64 from the same bf16 inputs. Prints the largest " +
        "relative error of a checked row, tokens and token-heads per second, the segments, the bytes of state moved " +
        "between grains and the peak resident memory of this process. Exits with code 1 when the error exceeds 2e-2. " +
        "The 1,000,000-token default writes about 3 GiB of inputs and 1 GiB of output.",
        [
            new("--tokens", "N", "Sequence length t. Default 1000000."),
            new("--heads", "H", "Heads h, for queries and keys alike. Default 8."),
            new("--dim", "D", "Key and value dimension d. Default 64."),
            new("--deg", "P", "Degree p, even and >= 2. Default 2."),
            new("--chunk-size", "TOKENS", "Tokens per chunk, or 0 for the quadratic form within each segment. Default: the fastest size for the shape, picked by the library."),
            new("--segment-tokens", "N", "Tokens per segment, rounded up to whole chunks; 0 lets the coordinator choose. Default 0."),
            new("--threads", "N", "Compute threads of the embedded silo, and of writing and checking. Default: every core."),
            new("--seed", "S", "Seed of the random generator. Default 42."),
            new("--keep", null, "Keep the temporary folder with the inputs and the output, and print its path."),
        ]);

    /// <summary>Runs the command.</summary>
    public static async Task<int> ExecuteAsync(ParsedOptions options, CommandContext context)
    {
        int tokens = options.GetInt("--tokens", 1_000_000, minimum: 1);
        int heads = options.GetInt("--heads", 8, minimum: 1);
        int dim = options.GetInt("--dim", 64, minimum: 1);
        int degree = options.GetInt("--deg", 2, minimum: int.MinValue);
        int? requestedChunkSize = options.GetOptionalInt("--chunk-size", minimum: 0);
        int segmentTokens = options.GetInt("--segment-tokens", 0, minimum: 0);
        int? threads = options.GetOptionalInt("--threads", minimum: 1);
        int seed = options.GetInt("--seed", 42, minimum: int.MinValue);
        bool keep = options.HasFlag("--keep");
        if (degree < 2 || degree % 2 != 0)
        {
            throw options.Error($"invalid value {degree} for --deg: the degree must be even and at least 2");
        }

        bool automaticChunk = requestedChunkSize is null;
        int chunkSize = requestedChunkSize ?? ChunkSizeSelector.Choose(dim, dim, degree, gated: true, tokens);

        // Checks the state size and chunk buffers before writing gigabytes of inputs.
        var kernelOptions = new RetentionOptions { Degree = degree, ChunkSize = chunkSize };
        using (Tensor probe = Tensor.Zeros(DataType.BFloat16, 1, 1, heads, dim))
        {
            RetentionProblem.Create(probe, probe, probe, null, null, kernelOptions, checkValues: false);
        }

        string folder = Path.Combine(Path.GetTempPath(), "powerret-demo-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        try
        {
            var demo = new DemoRun(context, tokens, heads, dim, degree, chunkSize, automaticChunk, segmentTokens, threads, seed, folder);
            return await demo.RunAsync().ConfigureAwait(false);
        }
        finally
        {
            if (keep)
            {
                context.Output.WriteLine($"kept:    {folder}");
            }
            else
            {
                DeleteFolder(folder, context.Error);
            }
        }
    }

    private static void DeleteFolder(string folder, TextWriter error)
    {
        try
        {
            Directory.Delete(folder, recursive: true);
        }
        catch (IOException failure)
        {
            error.WriteLine($"powerret demo: could not delete the temporary folder {folder}: {failure.Message}");
        }
        catch (UnauthorizedAccessException failure)
        {
            error.WriteLine($"powerret demo: could not delete the temporary folder {folder}: {failure.Message}");
        }
    }

    /// <summary>The steps of one demo: write the inputs, run the job, check the sample, report.</summary>
    private sealed class DemoRun(CommandContext context, int tokens, int heads, int dim, int degree, int chunkSize, bool automaticChunk, int segmentTokens, int? threads, int seed, string folder)
    {
        private readonly TextWriter _output = context.Output;
        private readonly long _tokenHeads = (long)tokens * heads;

        public async Task<int> RunAsync()
        {
            string inputPath = Path.Combine(folder, "inputs.safetensors");
            string outputPath = Path.Combine(folder, "y.safetensors");
            long expandedDim = SymmetricPowerBasis.ExpandedDimOf(dim, degree);
            string chunking = chunkSize == 0
                ? "chunk size 0 (quadratic form within each segment)"
                : Units.Invariant($"chunk size {chunkSize}{(automaticChunk ? " (chosen automatically)" : string.Empty)}");
            _output.WriteLine(Units.Invariant($"demo:    t={tokens}, h={heads}, d=e={dim}, p={degree} (D={expandedDim}), bf16 with log-gates, {chunking}, seed {seed}"));
            _output.Flush();

            TimeSpan writing = await WriteInputsAsync(inputPath).ConfigureAwait(false);
            _output.WriteLine(Units.Invariant($"inputs:  {inputPath}: {Units.Bytes(new FileInfo(inputPath).Length)} written in {writing.TotalSeconds:0.0} s"));
            _output.Flush();

            Stopwatch startup = Stopwatch.StartNew();
            await using ClusterBackend backend = await ClusterBackend.StartEmbeddedAsync(threads, context.Settings, context.CancellationToken).ConfigureAwait(false);
            _output.WriteLine(Units.Invariant($"cluster: {backend.Description}, started in {startup.Elapsed.TotalSeconds:0.0} s"));
            _output.Flush();

            (JobResult job, TimeSpan elapsed) = await RunJobAsync(backend, inputPath, outputPath).ConfigureAwait(false);
            double seconds = Math.Max(elapsed.TotalSeconds, 1e-9);
            _output.WriteLine(Units.Invariant($"run:     {tokens:N0} tokens x {heads} heads in {elapsed.TotalSeconds:0.00} s: {Units.Rate(tokens / seconds)} tokens/s, {Units.Rate(_tokenHeads / seconds)} token-heads/s"));
            _output.WriteLine(Units.Invariant($"         {RunCommand.DescribeSegments(job.Segments, job.SegmentTokens, tokens)}, {Units.Bytes(job.StateBytesMoved)} ({job.StateBytesMoved:N0} bytes) of state moved between grains, {job.SegmentRestarts} segment restarts"));
            _output.Flush();

            Stopwatch checking = Stopwatch.StartNew();
            SampleCheck check = CheckSample(inputPath, outputPath);
            bool passed = check.MaxRelativeError <= ErrorLimit;
            _output.WriteLine(Units.Invariant($"check:   {check.Rows} rows ({check.Rows / heads} tokens x {heads} heads) against the float64 quadratic form in {checking.Elapsed.TotalSeconds:0.0} s: max relative error {check.MaxRelativeError:0.00e+00} at token {check.Token}, head {check.QueryHead} (limit {ErrorLimit:0e+00}): {(passed ? "passed" : "FAILED")}"));
            _output.WriteLine($"memory:  peak resident set {Units.Bytes(PeakResidentBytes())} (including mapped pages of the input and output files)");
            _output.Flush();
            if (!passed)
            {
                context.Error.WriteLine(Units.Invariant($"powerret demo: the output differs from the quadratic form: max relative error {check.MaxRelativeError:0.00e+00} at token {check.Token}, head {check.QueryHead} is above {ErrorLimit:0e+00}."));
                return 1;
            }

            return 0;
        }

        private async Task<TimeSpan> WriteInputsAsync(string inputPath)
        {
            var progress = new ProgressDisplay(context.Error, context.Settings, "inputs", _tokenHeads);
            Stopwatch clock = Stopwatch.StartNew();
            try
            {
                await Task.Run(() => DemoInputs.Write(inputPath, tokens, heads, dim, seed, threads, progress, context.CancellationToken), context.CancellationToken).ConfigureAwait(false);
            }
            finally
            {
                progress.Finish();
            }

            return clock.Elapsed;
        }

        private async Task<(JobResult Job, TimeSpan Elapsed)> RunJobAsync(ClusterBackend backend, string inputPath, string outputPath)
        {
            var options = new ProcessingOptions { Degree = degree, ChunkSize = chunkSize, SegmentTokens = segmentTokens };
            var files = new GrainInputFiles(null, null, null, null, inputPath);
            var progress = new ProgressDisplay(context.Error, context.Settings, "demo", _tokenHeads);
            Stopwatch clock = Stopwatch.StartNew();
            try
            {
                JobResult job = await backend.ProcessFilesAsync(files, outputPath, null, options, progress, context.CancellationToken).ConfigureAwait(false);
                return (job, clock.Elapsed);
            }
            finally
            {
                progress.Finish();
            }
        }

        private SampleCheck CheckSample(string inputPath, string outputPath)
        {
            using SafetensorsReader inputs = SafetensorsFile.Open(inputPath);
            using SafetensorsReader output = SafetensorsFile.Open(outputPath);
            using Tensor q = inputs.GetTensor("q");
            using Tensor k = inputs.GetTensor("k");
            using Tensor v = inputs.GetTensor("v");
            using Tensor logG = inputs.GetTensor("log_g");
            using Tensor y = output.GetTensor(OutputFile.SafetensorsTensorName);
            int[] sample = QuadraticReference.SampleTokens(tokens, SampleTokenCount);
            float scale = 1f / MathF.Sqrt(dim);
            return QuadraticReference.Check(q, k, v, logG, y, degree, scale, sample, threads, context.CancellationToken);
        }
    }

    /// <summary>Returns the peak resident set of this process: VmHWM on Linux, else the peak working set.</summary>
    private static long PeakResidentBytes()
    {
        const string StatusFile = "/proc/self/status";
        if (File.Exists(StatusFile))
        {
            foreach (string line in File.ReadLines(StatusFile))
            {
                // The line reads "VmHWM:   123456 kB".
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal)
                    && long.TryParse(line["VmHWM:".Length..].Replace("kB", string.Empty, StringComparison.Ordinal).Trim(), out long kilobytes))
                {
                    return kilobytes * 1024;
                }
            }
        }

        using var process = Process.GetCurrentProcess();
        return process.PeakWorkingSet64;
    }
}
