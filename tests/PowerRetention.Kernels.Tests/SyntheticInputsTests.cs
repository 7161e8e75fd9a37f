namespace PowerRetention.Kernels.Tests;

public sealed class SyntheticInputsTests
{
    [Fact]
    public void SameSeed_GivesSameValues()
    {
        RetentionInputs first = SyntheticInputs.Create(2, 70_000, 1, 4, gating: true, seed: 9);
        RetentionInputs second = SyntheticInputs.Create(2, 70_000, 1, 4, gating: true, seed: 9);

        Assert.Equal(first.Q.ToSingleArray(), second.Q.ToSingleArray());
        Assert.Equal(first.LogG!.ToSingleArray(), second.LogG!.ToSingleArray());
    }

    [Fact]
    public void OtherSeed_GivesOtherValues()
    {
        float[] first = SyntheticInputs.Create(1, 100, 1, 4, seed: 1).K.ToSingleArray();
        float[] second = SyntheticInputs.Create(1, 100, 1, 4, seed: 2).K.ToSingleArray();

        Assert.NotEqual(first, second);
    }

    [Fact]
    public void Values_FollowLibraryDistributions()
    {
        RetentionInputs inputs = SyntheticInputs.Create(1, 50_000, 1, 16, gating: true, seed: 3);
        float[] q = inputs.Q.ToSingleArray();
        float[] gates = inputs.LogG!.ToSingleArray();

        double mean = q.Average(x => (double)x);
        double deviation = Math.Sqrt(q.Average(x => ((double)x - mean) * ((double)x - mean)));

        // Normal / sqrt(16): mean 0, standard deviation 0.25; log(sigmoid(x)) is always negative.
        Assert.InRange(mean, -0.005, 0.005);
        Assert.InRange(deviation, 0.245, 0.255);
        Assert.All(gates, g => Assert.True(g < 0f, $"log-gate {g} is not negative"));
        Assert.InRange(gates.Average(g => (double)g), -0.85, -0.75);
    }
}
