namespace PowerRetention.Kernels;

public static partial class Retention
{
    /// <summary>
    /// Computes each chunk's state delta, S = sum_j phiK(k_j) v_j^T and s = sum_j phiK(k_j), without gating.
    /// Apply gating by scaling the keys first, by exp((g_last - g_j) / p).
    /// </summary>
    /// <param name="k">Keys, (b, n, c, h, d): n chunks of c tokens.</param>
    /// <param name="v">Values, (b, n, c, h, e).</param>
    /// <returns>S of shape (b, n, h, D, e) and s of shape (b, n, h, D), float32.</returns>
    /// <exception cref="ArgumentException">The shapes do not match.</exception>
    public static (Tensor Values, Tensor Normalizer) UpdateState(Tensor k, Tensor v, int degree = 2)
    {
        RetentionValidation.CheckDegree(degree);
        RetentionValidation.CheckRank(k, "K", 5, "(b, n, c, h, d)");
        RetentionValidation.CheckRank(v, "V", 5, "(b, n, c, h, e)");
        for (int axis = 0; axis < 4; axis++)
        {
            RetentionValidation.CheckDim(v, "V", axis, k.Dim(axis), "size", "(b, n, c, h, e)");
        }

        int b = k.Dim(0), n = k.Dim(1), c = k.Dim(2), h = k.Dim(3), d = k.Dim(4), e = v.Dim(4);
        SymmetricPowerBasis basis = SymmetricPowerBasis.Get(d, degree);
        int expanded = basis.ExpandedDim;
        RetentionValidation.CheckStateFits((long)b * n, h, expanded, e, "chunk states");
        var values = Tensor.Zeros(DataType.Float32, b, n, h, expanded, e);
        var normalizer = Tensor.Zeros(DataType.Float32, b, n, h, expanded);
        var key = new float[d];
        var value = new float[e];
        var phi = new float[expanded];
        for (int chunk = 0; chunk < b * n; chunk++)
        {
            for (int head = 0; head < h; head++)
            {
                var state = new float[(long)expanded * e];
                var sum = new float[expanded];
                for (int j = 0; j < c; j++)
                {
                    long row = (((long)chunk * c) + j) * h + head;
                    k.Storage.Read(row * d, key);
                    v.Storage.Read(row * e, value);
                    basis.EmbedKey(key, phi);
                    for (int f = 0; f < expanded; f++)
                    {
                        sum[f] += phi[f];
                        Span<float> target = state.AsSpan(f * e, e);
                        for (int m = 0; m < e; m++)
                        {
                            target[m] = MathF.FusedMultiplyAdd(phi[f], value[m], target[m]);
                        }
                    }
                }

                long headIndex = ((long)chunk * h) + head;
                values.Storage.Write(headIndex * expanded * e, state);
                normalizer.Storage.Write(headIndex * expanded, sum);
            }
        }

        return (values, normalizer);
    }

    /// <summary>
    /// Combines chunk attention with the state entering each chunk:
    /// y_i = (num_i + scale^p phiQ(q_i) S) / (den_i + scale^p phiQ(q_i) s), where num and den are the true
    /// attention sums (parts times exp(RowMax)). Without attention parts the state alone is read.
    /// Apply gating by scaling the queries first, by exp(g_i / p).
    /// </summary>
    /// <param name="q">Queries, (b, n, c, hq, d).</param>
    /// <param name="values">States S entering each chunk, (b, n, h, D, e).</param>
    /// <param name="normalizer">Normalisers s, (b, n, h, D).</param>
    /// <param name="attention">Optional in-chunk attention of the (b, n * c, hq, ...) layout, as from <see cref="AttentionUnnormalized"/> per chunk.</param>
    /// <returns>Y, (b, n, c, hq, e), float32; rows whose total weight is zero are zero.</returns>
    /// <exception cref="ArgumentException">The shapes do not match.</exception>
    public static Tensor QueryState(Tensor q, Tensor values, Tensor normalizer, AttentionParts? attention = null, int degree = 2, float? scale = null)
    {
        RetentionValidation.CheckDegree(degree);
        RetentionValidation.CheckRank(q, "Q", 5, "(b, n, c, hq, d)");
        RetentionValidation.CheckRank(values, "S", 5, "(b, n, h, D, e)");
        RetentionValidation.CheckRank(normalizer, "s", 4, "(b, n, h, D)");
        int b = q.Dim(0), n = q.Dim(1), c = q.Dim(2), hq = q.Dim(3), d = q.Dim(4);
        int h = values.Dim(2), expanded = values.Dim(3), e = values.Dim(4);
        SymmetricPowerBasis basis = SymmetricPowerBasis.Get(d, degree);
        RetentionValidation.CheckDim(values, "S", 0, b, "batch size", "(b, n, h, D, e)");
        RetentionValidation.CheckDim(values, "S", 1, n, "chunk count", "(b, n, h, D, e)");
        RetentionValidation.CheckDim(values, "S", 3, basis.ExpandedDim, $"feature count for d={d}, p={degree}", "(b, n, h, D, e)");
        for (int axis = 0; axis < 4; axis++)
        {
            RetentionValidation.CheckDim(normalizer, "s", axis, values.Dim(axis), "size", "(b, n, h, D)");
        }

        if (h < 1 || hq % h != 0)
        {
            throw new ArgumentException($"Query heads hq={hq} must be a multiple of state heads h={h}.", nameof(q));
        }

        if (attention is not null)
        {
            int[] expected = [b, n * c, hq, e];
            if (!attention.Numerator.Shape.SequenceEqual(expected))
            {
                throw new ArgumentException($"Attention numerator must have shape {Tensor.FormatShape(expected)}; got {Tensor.FormatShape(attention.Numerator.Shape)}.", nameof(attention));
            }
        }

        float resolvedScale = RetentionValidation.ResolveScale(scale, d);
        int group = hq / h;
        var output = Tensor.Zeros(DataType.Float32, b, n, c, hq, e);
        var query = new float[d];
        var phi = new float[expanded];
        var state = new float[(long)expanded * e];
        var sum = new float[expanded];
        var numerator = new double[e];
        var row = new float[e];
        var result = new float[e];
        Span<float> one = stackalloc float[1];
        for (int batch = 0; batch < b; batch++)
        {
            for (int chunk = 0; chunk < n; chunk++)
            {
                for (int head = 0; head < h; head++)
                {
                    long headIndex = (((long)batch * n) + chunk) * h + head;
                    values.Storage.Read(headIndex * expanded * e, state);
                    normalizer.Storage.Read(headIndex * expanded, sum);
                    for (int r = 0; r < group; r++)
                    {
                        int queryHead = (head * group) + r;
                        for (int i = 0; i < c; i++)
                        {
                            long rowIndex = ((((long)batch * n) + chunk) * c + i) * hq + queryHead;
                            q.Storage.Read(rowIndex * d, query);
                            for (int a = 0; a < d; a++)
                            {
                                query[a] *= resolvedScale;
                            }

                            basis.EmbedQuery(query, phi);
                            Array.Clear(numerator);
                            double denominator = 0;
                            for (int f = 0; f < expanded; f++)
                            {
                                denominator += phi[f] * sum[f];
                                for (int m = 0; m < e; m++)
                                {
                                    numerator[m] += phi[f] * state[((long)f * e) + m];
                                }
                            }

                            if (attention is not null)
                            {
                                attention.RowMax.Storage.Read(rowIndex, one);
                                double factor = float.IsNegativeInfinity(one[0]) ? 0 : Math.Exp(one[0]);
                                attention.Denominator.Storage.Read(rowIndex, one);
                                denominator += factor * one[0];
                                attention.Numerator.Storage.Read(rowIndex * e, row);
                                for (int m = 0; m < e; m++)
                                {
                                    numerator[m] += factor * row[m];
                                }
                            }

                            for (int m = 0; m < e; m++)
                            {
                                result[m] = denominator == 0 ? 0f : (float)(numerator[m] / denominator);
                            }

                            output.Storage.Write(rowIndex * e, result);
                        }
                    }
                }
            }
        }

        return output;
    }

    /// <summary>
    /// Computes the discounted cumulative sum over chunks: out[0] = 0 and
    /// out[i + 1] = exp(logDecay[i]) * out[i] + x[i].
    /// </summary>
    /// <param name="x">Values, (b, n, h, ...).</param>
    /// <param name="logDecay">Per-chunk log-decay, (b, n, h), every value &lt;= 0.</param>
    /// <returns>(b, n + 1, h, ...), float32.</returns>
    /// <exception cref="ArgumentException">The shapes do not match or a log-decay is positive or not finite.</exception>
    public static Tensor Discumsum(Tensor x, Tensor logDecay)
    {
        if (x.Rank < 3)
        {
            throw new ArgumentException($"X must have shape (b, n, h, ...); got {Tensor.FormatShape(x.Shape)}.", nameof(x));
        }

        RetentionValidation.CheckRank(logDecay, "log_G", 3, "(b, n, h)");
        for (int axis = 0; axis < 3; axis++)
        {
            RetentionValidation.CheckDim(logDecay, "log_G", axis, x.Dim(axis), "size", "(b, n, h)");
        }

        RetentionValidation.CheckLogGates(logDecay, "log_G");
        int b = x.Dim(0), n = x.Dim(1), h = x.Dim(2);
        long inner = x.ElementCount / Math.Max(1L, (long)b * n * h);
        int[] shape = x.Shape.ToArray();
        shape[1] = n + 1;
        var output = Tensor.Zeros(DataType.Float32, shape);
        var running = new float[inner];
        var step = new float[inner];
        Span<float> one = stackalloc float[1];
        for (int batch = 0; batch < b; batch++)
        {
            for (int head = 0; head < h; head++)
            {
                Array.Clear(running);
                output.Storage.Write(((((long)batch * (n + 1)) * h) + head) * inner, running);
                for (int i = 0; i < n; i++)
                {
                    logDecay.Storage.Read((((long)batch * n) + i) * h + head, one);
                    float decay = MathF.Exp(one[0]);
                    x.Storage.Read(((((long)batch * n) + i) * h + head) * inner, step);
                    for (long m = 0; m < inner; m++)
                    {
                        running[m] = MathF.FusedMultiplyAdd(decay, running[m], step[m]);
                    }

                    output.Storage.Write(((((long)batch * (n + 1)) + i + 1) * h + head) * inner, running);
                }
            }
        }

        return output;
    }
}
