using System.Diagnostics;
using System.Numerics;
using System.Runtime.CompilerServices;

namespace PowerRetention.Benchmarks;

/// <summary>
/// The fused multiply-add rate this machine actually sustains, from a loop of independent register-only
/// FMAs at the runtime's vector width: the ceiling against which the kernels' GFLOP/s are judged.
/// </summary>
public static class PeakFlops
{
    // Twelve independent chains hide an FMA latency of up to six cycles at two FMAs per cycle.
    private const int Chains = 12;

    /// <summary>Best GFLOP/s of one thread and of <paramref name="threads"/> threads running at once.</summary>
    public static (double OneThread, double AllThreads) Measure(int threads, double seconds = 1.0)
    {
        return (Best(1, seconds), Best(threads, seconds));
    }

    private static double Best(int threads, double seconds)
    {
        const long iterations = 20_000_000;
        Loop(1000);
        double best = 0;
        var total = Stopwatch.StartNew();
        while (total.Elapsed.TotalSeconds < seconds)
        {
            var timer = Stopwatch.StartNew();
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, _ => Loop(iterations));
            double flops = (double)threads * iterations * Chains * Vector<float>.Count * 2;
            best = Math.Max(best, flops / timer.Elapsed.TotalSeconds / 1e9);
        }

        return best;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static float Loop(long iterations)
    {
        var x = new Vector<float>(0.999f);
        var y = new Vector<float>(1e-7f);
        Vector<float> a0 = Vector<float>.One, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
        Vector<float> a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
        for (long i = 0; i < iterations; i++)
        {
            a0 = Vector.FusedMultiplyAdd(a0, x, y);
            a1 = Vector.FusedMultiplyAdd(a1, x, y);
            a2 = Vector.FusedMultiplyAdd(a2, x, y);
            a3 = Vector.FusedMultiplyAdd(a3, x, y);
            a4 = Vector.FusedMultiplyAdd(a4, x, y);
            a5 = Vector.FusedMultiplyAdd(a5, x, y);
            a6 = Vector.FusedMultiplyAdd(a6, x, y);
            a7 = Vector.FusedMultiplyAdd(a7, x, y);
            a8 = Vector.FusedMultiplyAdd(a8, x, y);
            a9 = Vector.FusedMultiplyAdd(a9, x, y);
            a10 = Vector.FusedMultiplyAdd(a10, x, y);
            a11 = Vector.FusedMultiplyAdd(a11, x, y);
        }

        return Vector.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
    }
}
