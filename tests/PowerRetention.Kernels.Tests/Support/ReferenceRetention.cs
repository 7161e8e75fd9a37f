namespace PowerRetention.Kernels.Tests.Support;

/// <summary>
/// The quadratic form evaluated directly in double precision: the definition every fast path is checked against.
/// </summary>
internal static class ReferenceRetention
{
    /// <summary>Returns y of shape (b, t, hq, e), with an optional initial state read through the embedding.</summary>
    public static double[] Compute(Tensor q, Tensor k, Tensor v, Tensor? logG, int degree, float? scale = null, RetentionState? initialState = null)
    {
        int b = q.Dim(0), t = q.Dim(1), hq = q.Dim(2), d = q.Dim(3), h = k.Dim(2), e = v.Dim(3);
        int group = hq / h;
        double s = scale ?? 1.0 / Math.Sqrt(d);
        float[] qa = q.ToSingleArray(), ka = k.ToSingleArray(), va = v.ToSingleArray();
        float[]? ga = logG?.ToSingleArray();
        var y = new double[(long)b * t * hq * e];
        SymmetricPowerBasis basis = SymmetricPowerBasis.Get(d, degree);
        var phi = new float[basis.ExpandedDim];
        var scaledQuery = new float[d];
        for (int bi = 0; bi < b; bi++)
        {
            for (int head = 0; head < hq; head++)
            {
                int kvHead = head / group;
                var cumulative = new double[t];
                double sum = 0;
                for (int i = 0; i < t; i++)
                {
                    sum += ga is null ? 0 : ga[((bi * t) + i) * h + kvHead];
                    cumulative[i] = sum;
                }

                for (int i = 0; i < t; i++)
                {
                    long qOffset = (((long)bi * t + i) * hq + head) * d;
                    var numerator = new double[e];
                    double denominator = 0;
                    for (int j = 0; j <= i; j++)
                    {
                        long kOffset = (((long)bi * t + j) * h + kvHead) * d;
                        double dot = 0;
                        for (int a = 0; a < d; a++)
                        {
                            dot += (double)qa[qOffset + a] * ka[kOffset + a];
                        }

                        double w = Math.Pow(s * dot, degree) * Math.Exp(cumulative[i] - cumulative[j]);
                        denominator += w;
                        long vOffset = (((long)bi * t + j) * h + kvHead) * e;
                        for (int m = 0; m < e; m++)
                        {
                            numerator[m] += w * va[vOffset + m];
                        }
                    }

                    if (initialState is not null)
                    {
                        // The initial state is decayed by exp(G_i) and read through phiQ(scale q).
                        HeadState state = initialState[bi, kvHead];
                        for (int a = 0; a < d; a++)
                        {
                            scaledQuery[a] = (float)(qa[qOffset + a] * s);
                        }

                        basis.EmbedQuery(scaledQuery, phi);
                        double decay = Math.Exp(cumulative[i]);
                        for (int f = 0; f < basis.ExpandedDim; f++)
                        {
                            denominator += decay * phi[f] * state.Normalizer[f];
                            for (int m = 0; m < e; m++)
                            {
                                numerator[m] += decay * phi[f] * state.Values[((long)f * e) + m];
                            }
                        }
                    }

                    long yOffset = (((long)bi * t + i) * hq + head) * e;
                    for (int m = 0; m < e; m++)
                    {
                        y[yOffset + m] = denominator == 0 ? 0 : numerator[m] / denominator;
                    }
                }
            }
        }

        return y;
    }

    /// <summary>Returns the final state S_T = exp(G_T) S_0 + sum_j exp(G_T - G_j) phiK(k_j) v_j^T in double, per (batch, head).</summary>
    public static (double[] Values, double[] Normalizer)[] FinalState(Tensor k, Tensor v, Tensor? logG, int degree)
    {
        int b = k.Dim(0), t = k.Dim(1), h = k.Dim(2), d = k.Dim(3), e = v.Dim(3);
        SymmetricPowerBasis basis = SymmetricPowerBasis.Get(d, degree);
        int expanded = basis.ExpandedDim;
        float[] ka = k.ToSingleArray(), va = v.ToSingleArray();
        float[]? ga = logG?.ToSingleArray();
        var result = new (double[], double[])[b * h];
        var phi = new float[expanded];
        var key = new float[d];
        for (int bi = 0; bi < b; bi++)
        {
            for (int head = 0; head < h; head++)
            {
                var values = new double[(long)expanded * e];
                var normalizer = new double[expanded];
                double total = 0;
                for (int j = 0; j < t; j++)
                {
                    total += ga is null ? 0 : ga[((bi * t) + j) * h + head];
                }

                double before = 0;
                for (int j = 0; j < t; j++)
                {
                    before += ga is null ? 0 : ga[((bi * t) + j) * h + head];
                    double decay = Math.Exp(total - before);
                    Array.Copy(ka, (((long)bi * t + j) * h + head) * d, key, 0, d);
                    basis.EmbedKey(key, phi);
                    long vOffset = (((long)bi * t + j) * h + head) * e;
                    for (int f = 0; f < expanded; f++)
                    {
                        normalizer[f] += decay * phi[f];
                        for (int m = 0; m < e; m++)
                        {
                            values[((long)f * e) + m] += decay * phi[f] * va[vOffset + m];
                        }
                    }
                }

                result[(bi * h) + head] = (values, normalizer);
            }
        }

        return result;
    }
}
