using System.Collections.Concurrent;
using System.Diagnostics;

namespace PowerRetention.Kernels;

/// <summary>
/// Picks the chunk size when the caller gives none. Only the in-chunk attention grows with the chunk
/// size, but small chunks run the state kernels with short, less efficient matrix products, so the
/// fastest size depends on the shape and the machine. For long sequences the candidates are timed
/// once per shape and process on one synthetic chunk each; the choice changes no result beyond
/// float rounding.
/// </summary>
public static class ChunkSizeSelector
{
    /// <summary>Chunk sizes considered, in tokens.</summary>
    public static readonly IReadOnlyList<int> Candidates = [128, 256, 512, 1024, 2048];

    /// <summary>Size used below the calibration threshold and where attention is a negligible share of the work.</summary>
    public const int FallbackChunkSize = 512;

    /// <summary>Sequences shorter than this use the fallback instead of timing candidates.</summary>
    public const int CalibrationThreshold = 16384;

    private static readonly ConcurrentDictionary<(int KeyDim, int ValueDim, int Degree, bool Gated), int> s_choices = new();

    /// <summary>Returns the chunk size for a problem of this shape and length.</summary>
    public static int Choose(int keyDim, int valueDim, int degree, bool gated, int time)
    {
        if (time <= FallbackChunkSize)
        {
            return Math.Max(1, time);
        }

        // When attention at the largest candidate is under 5% of the state work, the size barely matters.
        long expanded = SymmetricPowerBasis.ExpandedDimOf(keyDim, degree);
        double stateFlops = (4.0 * expanded * valueDim) + (3.0 * expanded);
        double attentionFlops = (double)(keyDim + valueDim) * (Candidates[^1] + 1);
        if (time < CalibrationThreshold || attentionFlops < 0.05 * stateFlops)
        {
            return FallbackChunkSize;
        }

        return s_choices.GetOrAdd((keyDim, valueDim, degree, gated), key => Calibrate(key.KeyDim, key.ValueDim, key.Degree, key.Gated));
    }

    // Times one chunk of each candidate, best of two after a warm-up chunk, by wall-clock time on this thread.
    private static int Calibrate(int keyDim, int valueDim, int degree, bool gated)
    {
        int best = FallbackChunkSize;
        double bestPerToken = double.MaxValue;
        foreach (int chunk in Candidates)
        {
            RetentionInputs inputs = SyntheticInputs.Create(1, 2 * chunk, 1, keyDim, valueDim: valueDim, gating: gated, seed: chunk);
            RetentionProblem problem = RetentionProblem.Create(inputs.Q, inputs.K, inputs.V, inputs.LogG, null, new RetentionOptions { Degree = degree, ChunkSize = chunk }, checkValues: false);
            var engine = new ChunkEngine(problem);
            var state = new HeadState(problem.ExpandedDim, valueDim);
            engine.ProcessChunk(0, 0, 0, chunk, state, attention: true, queryState: true, updateState: true);

            double perToken = double.MaxValue;
            for (int repeat = 0; repeat < 2; repeat++)
            {
                var timer = Stopwatch.StartNew();
                engine.ProcessChunk(0, 0, chunk, chunk, state, attention: true, queryState: true, updateState: true);
                perToken = Math.Min(perToken, timer.Elapsed.TotalSeconds / chunk);
            }

            if (perToken < bestPerToken)
            {
                bestPerToken = perToken;
                best = chunk;
            }
        }

        return best;
    }
}
