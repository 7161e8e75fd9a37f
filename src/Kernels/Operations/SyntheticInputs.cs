namespace PowerRetention.Kernels;

/// <summary>Seeded synthetic inputs.</summary>
/// <param name="Q">Queries, (b, t, hq, d).</param>
/// <param name="K">Keys, (b, t, h, d).</param>
/// <param name="V">Values, (b, t, h, e).</param>
/// <param name="LogG">Log-gates, (b, t, h), float32, or null without gating.</param>
public sealed record RetentionInputs(Tensor Q, Tensor K, Tensor V, Tensor? LogG);

/// <summary>
/// Creates inputs with the distributions of the Python library's <c>create_inputs</c>: Q, K and V are
/// standard normal divided by sqrt(d), log-gates are log(sigmoid(x)) of standard normal x.
/// </summary>
public static class SyntheticInputs
{
    /// <summary>Creates seeded inputs; the same arguments always give the same values.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A size is not positive, or hq is not a multiple of h.</exception>
    public static RetentionInputs Create(
        int batch,
        int time,
        int heads,
        int keyDim,
        int? queryHeads = null,
        int? valueDim = null,
        bool gating = false,
        int seed = 42,
        DataType dataType = DataType.Float32)
    {
        int hq = queryHeads ?? heads;
        int e = valueDim ?? keyDim;
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(time);
        ArgumentOutOfRangeException.ThrowIfLessThan(heads, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(keyDim, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(e, 1);
        if (hq < 1 || hq % heads != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(queryHeads), hq, $"Query heads must be a positive multiple of heads ({heads}); got {hq}.");
        }

        var random = new Random(seed);
        float scale = 1f / MathF.Sqrt(keyDim);
        Tensor q = Normal(random, dataType, scale, batch, time, hq, keyDim);
        Tensor k = Normal(random, dataType, scale, batch, time, heads, keyDim);
        Tensor v = Normal(random, dataType, scale, batch, time, heads, e);
        Tensor? logG = null;
        if (gating)
        {
            logG = Tensor.Zeros(DataType.Float32, batch, time, heads);
            FillBlocks(logG, () =>
            {
                // log(sigmoid(x)) = -log(1 + exp(-x)), written to stay finite for large |x|.
                double x = NextNormal(random);
                return (float)(x >= 0 ? -Math.Log(1 + Math.Exp(-x)) : x - Math.Log(1 + Math.Exp(x)));
            });
        }

        return new RetentionInputs(q, k, v, logG);
    }

    private static Tensor Normal(Random random, DataType dataType, float scale, params int[] shape)
    {
        Tensor tensor = Tensor.Zeros(dataType, shape);
        FillBlocks(tensor, () => (float)NextNormal(random) * scale);
        return tensor;
    }

    private static void FillBlocks(Tensor tensor, Func<float> next)
    {
        var block = new float[Math.Min(1 << 16, Math.Max(1L, tensor.ElementCount))];
        for (long start = 0; start < tensor.ElementCount; start += block.Length)
        {
            int count = (int)Math.Min(block.Length, tensor.ElementCount - start);
            for (int i = 0; i < count; i++)
            {
                block[i] = next();
            }

            tensor.Storage.Write(start, block.AsSpan(0, count));
        }
    }

    // Box-Muller transform; one normal per call keeps the sequence simple to reproduce.
    private static double NextNormal(Random random)
    {
        double u1 = 1.0 - random.NextDouble();
        double u2 = random.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }
}
