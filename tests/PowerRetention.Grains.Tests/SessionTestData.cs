using PowerRetention.Kernels;

namespace PowerRetention.Grains.Tests;

/// <summary>Inputs and the float64 quadratic form for the decode session tests: b=1, h=2, hq=4, d=e=8.</summary>
internal static class SessionTestData
{
    public const int Heads = 2;
    public const int QueryHeads = 4;
    public const int Dim = 8;

    public static RetentionInputs Inputs(int time, int seed, bool gated) =>
        SyntheticInputs.Create(1, time, Heads, Dim, QueryHeads, Dim, gated, seed);

    public static DecodeSessionSpec Spec(int degree = 2, int switchOver = 5) => new()
    {
        Heads = Heads,
        QueryHeads = QueryHeads,
        KeyDim = Dim,
        Degree = degree,
        SwitchOverSeqLen = switchOver,
    };

    /// <summary>Returns tokens [start, end) of every tensor.</summary>
    public static RetentionInputs Slice(RetentionInputs inputs, int start, int end) =>
        new(SliceTime(inputs.Q, start, end), SliceTime(inputs.K, start, end), SliceTime(inputs.V, start, end), inputs.LogG is null ? null : SliceTime(inputs.LogG, start, end));

    public static Tensor SliceTime(Tensor tensor, int start, int end)
    {
        int[] shape = tensor.Shape.ToArray();
        int time = shape[1];
        shape[1] = end - start;
        long row = tensor.ElementCount / ((long)shape[0] * time);
        var values = new float[shape[0] * (end - start) * row];
        for (int batch = 0; batch < shape[0]; batch++)
        {
            tensor.Storage.Read((((long)batch * time) + start) * row, values.AsSpan((int)(batch * (end - start) * row), (int)((end - start) * row)));
        }

        return Tensor.FromSingles(tensor.DataType, values, shape);
    }

    /// <summary>
    /// Evaluates y_i = sum_j w[i, j] v_j / sum_j w[i, j], w[i, j] = (scale q_i . k_j)^p exp(G_i - G_j)
    /// for j &lt;= i, in float64, over the whole sequence; the result is (b, t, hq, e).
    /// </summary>
    public static double[] QuadraticForm(RetentionInputs inputs, int degree)
    {
        float[] q = inputs.Q.ToSingleArray(), k = inputs.K.ToSingleArray(), v = inputs.V.ToSingleArray();
        float[]? logG = inputs.LogG?.ToSingleArray();
        int batch = inputs.Q.Dim(0), time = inputs.Q.Dim(1), queryHeads = inputs.Q.Dim(2), dim = inputs.Q.Dim(3);
        int heads = inputs.K.Dim(2), valueDim = inputs.V.Dim(3), group = queryHeads / heads;
        double scale = 1.0 / Math.Sqrt(dim);
        var y = new double[(long)batch * time * queryHeads * valueDim];
        var cumulative = new double[time];
        var numerator = new double[valueDim];
        for (int b = 0; b < batch; b++)
        {
            for (int h = 0; h < heads; h++)
            {
                double sum = 0;
                for (int t = 0; t < time; t++)
                {
                    sum += logG is null ? 0 : logG[(((b * time) + t) * heads) + h];
                    cumulative[t] = sum;
                }

                for (int qh = h * group; qh < (h + 1) * group; qh++)
                {
                    for (int i = 0; i < time; i++)
                    {
                        Array.Clear(numerator);
                        double denominator = 0;
                        int qRow = (((b * time) + i) * queryHeads) + qh;
                        for (int j = 0; j <= i; j++)
                        {
                            int kvRow = (((b * time) + j) * heads) + h;
                            double dot = 0;
                            for (int a = 0; a < dim; a++)
                            {
                                dot += (double)q[(qRow * dim) + a] * k[(kvRow * dim) + a];
                            }

                            double weight = Math.Pow(scale * dot, degree) * Math.Exp(cumulative[i] - cumulative[j]);
                            denominator += weight;
                            for (int m = 0; m < valueDim; m++)
                            {
                                numerator[m] += weight * v[(kvRow * valueDim) + m];
                            }
                        }

                        for (int m = 0; m < valueDim; m++)
                        {
                            y[((long)qRow * valueDim) + m] = denominator == 0 ? 0 : numerator[m] / denominator;
                        }
                    }
                }
            }
        }

        return y;
    }

    /// <summary>Returns rows of tokens [start, end) of a (1, t, hq, e) output as float32.</summary>
    public static float[] Rows(double[] y, int start, int end)
    {
        int row = QueryHeads * Dim;
        return y.Skip(start * row).Take((end - start) * row).Select(x => (float)x).ToArray();
    }

    public static double MaxDifference(float[] actual, float[] expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        double max = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            max = Math.Max(max, Math.Abs((double)actual[i] - expected[i]));
        }

        return max;
    }
}
