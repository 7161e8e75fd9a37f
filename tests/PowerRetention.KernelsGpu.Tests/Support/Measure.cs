namespace PowerRetention.KernelsGpu.Tests.Support;

/// <summary>Error measures and comparisons shared by the tests.</summary>
internal static class Measure
{
    /// <summary>Returns ||actual - expected|| / ||expected|| (Frobenius), or ||actual|| when expected is zero.</summary>
    public static double RelativeError(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        double difference = 0, norm = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            double delta = (double)actual[i] - expected[i];
            difference += delta * delta;
            norm += (double)expected[i] * expected[i];
        }

        return norm == 0 ? Math.Sqrt(difference) : Math.Sqrt(difference / norm);
    }

    /// <summary>Asserts that the relative error of <paramref name="actual"/> is below <paramref name="bound"/>, naming what was compared.</summary>
    public static void Within(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, double bound, string what)
    {
        double error = RelativeError(actual, expected);
        Assert.True(error < bound, $"{what}: relative error {error:E3} is not below {bound:E1}.");
    }
}
