using System.Diagnostics;
using PowerRetention.Kernels;
using PowerRetention.Kernels.Gpu;

namespace PowerRetention.GpuCheck;

/// <summary>Times one gated bfloat16 sequence: b=1, h=8, d=e=64, p=2, chunks of 1024 tokens.</summary>
internal static class Benchmark
{
    private const int Heads = 8;
    private const int Dim = 64;
    private const int Degree = 2;
    private const int Chunk = 1024;

    public static void Run(GpuBackend backend, int time, bool cpuBaseline)
    {
        long expanded = SymmetricPowerBasis.ExpandedDimOf(Dim, Degree);

        // A sequence shorter than a chunk is one chunk of its own length.
        int chunk = Math.Min(Chunk, time);
        double flops = FlopsPerTokenHead(Dim, Dim, expanded, chunk) * time * Heads;
        Console.WriteLine($"benchmark: b=1 t={time} h={Heads} d=e={Dim} p={Degree} chunk={chunk} bfloat16, D={expanded}, {flops / 1e9:F1} GFLOP");

        // The first call loads the kernels into the CUDA context; keep it out of the timing.
        RetentionInputs warmup = SyntheticInputs.Create(1, Math.Min(time, 2 * Chunk), Heads, Dim, gating: true, seed: 1, dataType: DataType.BFloat16);
        Retention.Compute(warmup.Q, warmup.K, warmup.V, warmup.LogG, options: Options(backend));

        RetentionInputs inputs = SyntheticInputs.Create(1, time, Heads, Dim, gating: true, seed: 2, dataType: DataType.BFloat16);
        Report(backend.Name, inputs, Options(backend), flops);
        if (cpuBaseline)
        {
            Report("cpu", inputs, Options(null), flops);
        }
    }

    /// <summary>
    /// Counts the floating-point operations of one token of one head: in-chunk attention (d + e)(c + 1),
    /// embedding and state query 2De + D, state update 2De + 2D.
    /// </summary>
    public static double FlopsPerTokenHead(int keyDim, int valueDim, long expanded, int chunk) =>
        ((double)(keyDim + valueDim) * (chunk + 1)) + (2.0 * expanded * valueDim) + expanded + (2.0 * expanded * valueDim) + (2.0 * expanded);

    private static RetentionOptions Options(IComputeBackend? backend) =>
        new() { Degree = Degree, ChunkSize = Chunk, Backend = backend };

    private static void Report(string name, RetentionInputs inputs, RetentionOptions options, double flops)
    {
        var stopwatch = Stopwatch.StartNew();
        Retention.Compute(inputs.Q, inputs.K, inputs.V, inputs.LogG, options: options);
        stopwatch.Stop();
        double milliseconds = stopwatch.Elapsed.TotalMilliseconds;
        Console.WriteLine($"{name}: {milliseconds:F0} ms, {flops / (milliseconds * 1e9):F2} effective TFLOP/s");
    }
}
