using PowerRetention.Kernels;

namespace PowerRetention.Cli;

/// <summary>The largest error of a sample of output rows and where it is.</summary>
/// <param name="MaxRelativeError">Largest ||y - y_ref|| / ||y_ref|| over the sampled (token, query head) rows.</param>
/// <param name="Token">Token of that row.</param>
/// <param name="QueryHead">Query head of that row.</param>
/// <param name="Rows">Rows compared: sampled tokens times query heads.</param>
internal sealed record SampleCheck(double MaxRelativeError, int Token, int QueryHead, int Rows);

/// <summary>
/// Evaluates output rows of retention directly from the quadratic form in float64, for checking a sample of a
/// long output without the O(t^2) cost of every row:
/// <c>y_i = sum_{j &lt;= i} w_ij v_j / sum_{j &lt;= i} w_ij</c> with <c>w_ij = (scale q_i . k_j)^p exp(G_i - G_j)</c>
/// and <c>G</c> the cumulative sum of the log-gates. A row whose weights are all zero is zero.
/// </summary>
internal static class QuadraticReference
{
    private const int BlockTokens = 4096;

    /// <summary>Returns up to <paramref name="count"/> distinct tokens spread evenly over [0, t), the first and last included.</summary>
    public static int[] SampleTokens(int time, int count)
    {
        if (time <= count)
        {
            return Enumerable.Range(0, time).ToArray();
        }

        return Enumerable.Range(0, count)
            .Select(i => (int)Math.Round((double)i * (time - 1) / (count - 1)))
            .Distinct()
            .ToArray();
    }

    /// <summary>
    /// Compares rows <paramref name="tokens"/> of Y, every query head, with the quadratic form evaluated in float64
    /// from the same inputs. Reads K and V once, in blocks of tokens.
    /// </summary>
    /// <param name="q">Queries (1, t, hq, d).</param>
    /// <param name="k">Keys (1, t, h, d).</param>
    /// <param name="v">Values (1, t, h, e).</param>
    /// <param name="logG">Log-gates (1, t, h), or null without gating.</param>
    /// <param name="y">Output (1, t, hq, e) to check.</param>
    /// <param name="degree">Degree p.</param>
    /// <param name="scale">Scale applied to q . k before the power.</param>
    /// <param name="tokens">Tokens whose rows are checked.</param>
    /// <param name="threads">Rows evaluated at once; null means one per core.</param>
    /// <param name="cancellationToken">Stops the evaluation.</param>
    /// <exception cref="ArgumentException">The batch size is not 1.</exception>
    public static SampleCheck Check(Tensor q, Tensor k, Tensor v, Tensor? logG, Tensor y, int degree, float scale, int[] tokens, int? threads, CancellationToken cancellationToken)
    {
        if (q.Dim(0) != 1)
        {
            throw new ArgumentException($"The sample check reads batch size 1; Q has shape {Tensor.FormatShape(q.Shape)}.", nameof(q));
        }

        int time = q.Dim(1), queryHeads = q.Dim(2), keyDim = q.Dim(3), heads = k.Dim(2), valueDim = v.Dim(3);
        int group = queryHeads / heads;
        double[][] cumulativeGates = CumulativeGates(logG, time, heads);
        var rows = new Row[tokens.Length * queryHeads];
        for (int s = 0; s < tokens.Length; s++)
        {
            var query = new float[queryHeads * keyDim];
            q.Storage.Read((long)tokens[s] * queryHeads * keyDim, query);
            for (int head = 0; head < queryHeads; head++)
            {
                double[] queryRow = query.AsSpan(head * keyDim, keyDim).ToArray().Select(x => (double)x).ToArray();
                rows[(s * queryHeads) + head] = new Row(tokens[s], head, head / group, queryRow, new double[valueDim]);
            }
        }

        int lastToken = tokens.Max();
        var keys = new float[BlockTokens * heads * keyDim];
        var values = new float[BlockTokens * heads * valueDim];
        var parallel = new ParallelOptions { CancellationToken = cancellationToken, MaxDegreeOfParallelism = threads ?? -1 };
        for (int start = 0; start <= lastToken; start += BlockTokens)
        {
            int count = Math.Min(BlockTokens, lastToken + 1 - start);
            k.Storage.Read((long)start * heads * keyDim, keys.AsSpan(0, count * heads * keyDim));
            v.Storage.Read((long)start * heads * valueDim, values.AsSpan(0, count * heads * valueDim));
            int blockStart = start;
            Parallel.ForEach(rows.Where(r => r.Token >= blockStart), parallel, row =>
                row.Accumulate(blockStart, Math.Min(count, row.Token + 1 - blockStart), keys, values, heads, keyDim, valueDim, degree, scale, cumulativeGates));
        }

        var output = new float[valueDim];
        SampleCheck worst = new(0, tokens[0], 0, rows.Length);
        foreach (Row row in rows)
        {
            y.Storage.Read(((long)row.Token * queryHeads + row.QueryHead) * valueDim, output);
            double error = row.RelativeError(output);
            if (error > worst.MaxRelativeError || double.IsNaN(error))
            {
                worst = new SampleCheck(error, row.Token, row.QueryHead, rows.Length);
            }
        }

        return worst;
    }

    // G[head][i] = sum of log_G[0..i] for that head, or null without gating.
    private static double[][] CumulativeGates(Tensor? logG, int time, int heads)
    {
        if (logG is null)
        {
            return [];
        }

        double[][] sums = Enumerable.Range(0, heads).Select(_ => new double[time]).ToArray();
        var running = new double[heads];
        var block = new float[BlockTokens * heads];
        for (int start = 0; start < time; start += BlockTokens)
        {
            int count = Math.Min(BlockTokens, time - start);
            logG.Storage.Read((long)start * heads, block.AsSpan(0, count * heads));
            for (int t = 0; t < count; t++)
            {
                for (int head = 0; head < heads; head++)
                {
                    running[head] += block[(t * heads) + head];
                    sums[head][start + t] = running[head];
                }
            }
        }

        return sums;
    }

    /// <summary>One (token, query head) row: its query and the running sums of the numerator and denominator.</summary>
    private sealed class Row(int token, int queryHead, int keyHead, double[] query, double[] numerator)
    {
        private double _denominator;

        public int Token => token;

        public int QueryHead => queryHead;

        /// <summary>Adds the weights of keys [start, start + count) from a block of K and V that begins at token start.</summary>
        public void Accumulate(int start, int count, float[] keys, float[] values, int heads, int keyDim, int valueDim, int degree, float scale, double[][] cumulativeGates)
        {
            double[]? gates = cumulativeGates.Length == 0 ? null : cumulativeGates[keyHead];
            for (int j = 0; j < count; j++)
            {
                int keyOffset = ((j * heads) + keyHead) * keyDim;
                double dot = 0;
                for (int c = 0; c < keyDim; c++)
                {
                    dot += query[c] * keys[keyOffset + c];
                }

                double weight = Math.Pow(scale * dot, degree);
                if (gates is not null)
                {
                    weight *= Math.Exp(gates[token] - gates[start + j]);
                }

                if (weight == 0)
                {
                    continue;
                }

                int valueOffset = ((j * heads) + keyHead) * valueDim;
                for (int c = 0; c < valueDim; c++)
                {
                    numerator[c] += weight * values[valueOffset + c];
                }

                _denominator += weight;
            }
        }

        /// <summary>Returns ||actual - reference|| / ||reference||, or ||actual|| when the reference row is zero.</summary>
        public double RelativeError(ReadOnlySpan<float> actual)
        {
            double difference = 0, norm = 0;
            for (int c = 0; c < numerator.Length; c++)
            {
                double reference = _denominator == 0 ? 0 : numerator[c] / _denominator;
                double delta = actual[c] - reference;
                difference += delta * delta;
                norm += reference * reference;
            }

            return norm == 0 ? Math.Sqrt(difference) : Math.Sqrt(difference / norm);
        }
    }
}
