namespace PowerRetention.Kernels.Tests.Support;

/// <summary>Error measures used across the tests.</summary>
internal static class Compare
{
    /// <summary>Returns ||actual - expected|| / ||expected|| (Frobenius), or ||actual|| when expected is zero.</summary>
    public static double RelativeError(ReadOnlySpan<float> actual, ReadOnlySpan<double> expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        double difference = 0, norm = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            double delta = actual[i] - expected[i];
            difference += delta * delta;
            norm += expected[i] * expected[i];
        }

        return norm == 0 ? Math.Sqrt(difference) : Math.Sqrt(difference / norm);
    }

    /// <summary>Returns the relative Frobenius error between two float arrays.</summary>
    public static double RelativeError(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        var wide = new double[expected.Length];
        for (int i = 0; i < expected.Length; i++)
        {
            wide[i] = expected[i];
        }

        return RelativeError(actual, wide);
    }

    /// <summary>Asserts a relative error bound, printing the error and the bound on failure.</summary>
    public static void Within(double error, double bound, string what)
    {
        Assert.True(error < bound, $"{what}: relative error {error:E3} is not below {bound:E1}.");
    }
}
