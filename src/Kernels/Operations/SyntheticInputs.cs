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
    private const int BlockElements = 1 << 16;

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

        float scale = 1f / MathF.Sqrt(keyDim);
        Tensor q = Normal(seed, 0, dataType, scale, batch, time, hq, keyDim);
        Tensor k = Normal(seed, 1, dataType, scale, batch, time, heads, keyDim);
        Tensor v = Normal(seed, 2, dataType, scale, batch, time, heads, e);
        Tensor? logG = null;
        if (gating)
        {
            // log(sigmoid(x)) = -log(1 + exp(-x)), written to stay finite for large |x|.
            logG = Tensor.Zeros(DataType.Float32, batch, time, heads);
            FillBlocks(logG, seed, 3, x => (float)(x >= 0 ? -Math.Log(1 + Math.Exp(-x)) : x - Math.Log(1 + Math.Exp(x))));
        }

        return new RetentionInputs(q, k, v, logG);
    }

    private static Tensor Normal(int seed, int stream, DataType dataType, float scale, params int[] shape)
    {
        Tensor tensor = Tensor.Zeros(dataType, shape);
        FillBlocks(tensor, seed, stream, x => (float)x * scale);
        return tensor;
    }

    // Blocks are filled in parallel, each from its own generator seeded by (seed, stream, block), so the
    // values do not depend on the number of threads.
    private static void FillBlocks(Tensor tensor, int seed, int stream, Func<double, float> transform)
    {
        long blocks = (tensor.ElementCount + BlockElements - 1) / BlockElements;
        Parallel.For(0L, blocks, block =>
        {
            long start = block * BlockElements;
            int count = (int)Math.Min(BlockElements, tensor.ElementCount - start);
            var random = new Random(MixSeed(seed, stream, block));
            var values = new float[count];
            for (int i = 0; i < count; i += 2)
            {
                // Box-Muller gives two independent normals per pair of uniforms.
                double radius = Math.Sqrt(-2.0 * Math.Log(1.0 - random.NextDouble()));
                double angle = 2.0 * Math.PI * random.NextDouble();
                values[i] = transform(radius * Math.Cos(angle));
                if (i + 1 < count)
                {
                    values[i + 1] = transform(radius * Math.Sin(angle));
                }
            }

            tensor.Storage.Write(start, values);
        });
    }

    // SplitMix64 finaliser over the three numbers: deterministic across processes, unlike HashCode.
    private static int MixSeed(int seed, int stream, long block)
    {
        ulong x = unchecked(((ulong)(uint)seed << 32) ^ ((ulong)(uint)stream << 48) ^ (ulong)block);
        x = unchecked((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL);
        x = unchecked((x ^ (x >> 27)) * 0x94D049BB133111EBUL);
        return (int)(x ^ (x >> 31));
    }
}
