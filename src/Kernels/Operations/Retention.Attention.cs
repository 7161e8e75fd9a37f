namespace PowerRetention.Kernels;

/// <summary>Un-normalised power attention: the true numerator is Numerator * exp(RowMax), likewise the denominator.</summary>
/// <param name="Numerator">sum_j w[i, j] v_j / exp(RowMax_i), shape (b, t, hq, e).</param>
/// <param name="Denominator">sum_j w[i, j] / exp(RowMax_i), shape (b, t, hq).</param>
/// <param name="RowMax">log max_j w[i, j], shape (b, t, hq); negative infinity for a row of zero weights.</param>
public sealed record AttentionParts(Tensor Numerator, Tensor Denominator, Tensor RowMax);

public static partial class Retention
{
    /// <summary>
    /// Computes causal power attention, the quadratic form, normalised: the same as <see cref="Compute"/>
    /// with chunk size 0.
    /// </summary>
    /// <exception cref="ArgumentException">As for <see cref="Compute"/>.</exception>
    public static Tensor Attention(Tensor q, Tensor k, Tensor v, Tensor? logG = null, int degree = 2, float? scale = null) =>
        Compute(q, k, v, logG, options: new RetentionOptions { Degree = degree, Scale = scale, ChunkSize = 0 }).Output;

    /// <summary>
    /// Computes causal power attention without normalising it, as numerator, denominator and row
    /// maximum, in float32. Combine with a state through <see cref="QueryState"/>.
    /// </summary>
    /// <exception cref="ArgumentException">As for <see cref="Compute"/>.</exception>
    public static AttentionParts AttentionUnnormalized(Tensor q, Tensor k, Tensor v, Tensor? logG = null, int degree = 2, float? scale = null)
    {
        var options = new RetentionOptions { Degree = degree, Scale = scale, ChunkSize = 0 };
        RetentionProblem problem = RetentionProblem.Create(q, k, v, logG, null, options);
        int b = problem.Batch, t = problem.Time, hq = problem.QueryHeads, e = problem.ValueDim;
        var numerator = Tensor.Zeros(DataType.Float32, b, t, hq, e);
        var denominator = Tensor.Zeros(DataType.Float32, b, t, hq);
        var rowMax = Tensor.Zeros(DataType.Float32, b, t, hq);
        if (t == 0)
        {
            return new AttentionParts(numerator, denominator, rowMax);
        }

        var engine = new ChunkEngine(problem) { TrackRowMax = true };
        var zero = new HeadState(problem.ExpandedDim, e);
        var row = new float[e];
        Span<float> one = stackalloc float[1];
        for (int batch = 0; batch < b; batch++)
        {
            for (int head = 0; head < problem.Heads; head++)
            {
                engine.ProcessChunk(batch, head, 0, t, zero, attention: true, queryState: false, updateState: false);
                for (int r = 0; r < problem.GroupSize; r++)
                {
                    int queryHead = (head * problem.GroupSize) + r;
                    for (int i = 0; i < t; i++)
                    {
                        float max = engine.RowMaxWeight(r)[i];
                        float inverse = max > 0f ? 1f / max : 0f;
                        ReadOnlySpan<float> source = engine.Numerator(r).Slice(i * engine.ValueStride, e);
                        for (int j = 0; j < e; j++)
                        {
                            row[j] = source[j] * inverse;
                        }

                        long offset = (((long)batch * t) + i) * hq + queryHead;
                        numerator.Storage.Write(offset * e, row);
                        one[0] = engine.Denominator(r)[i] * inverse;
                        denominator.Storage.Write(offset, one);
                        one[0] = max > 0f ? MathF.Log(max) : float.NegativeInfinity;
                        rowMax.Storage.Write(offset, one);
                    }
                }
            }
        }

        // The spans above point into the engine's native buffers, which are freed when the engine is collected.
        GC.KeepAlive(engine);
        return new AttentionParts(numerator, denominator, rowMax);
    }
}
