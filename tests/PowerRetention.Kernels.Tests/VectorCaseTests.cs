using PowerRetention.Kernels.Tests.Support;

namespace PowerRetention.Kernels.Tests;

public sealed class VectorCaseTests
{
    public static IEnumerable<object[]> Cases() => VectorCase.Names();

    [Theory]
    [MemberData(nameof(Cases))]
    public void Chunked_MatchesReference(string name)
    {
        using VectorCase vector = VectorCase.Load(name);
        var options = new RetentionOptions { Degree = vector.Degree, Scale = vector.Scale, ChunkSize = vector.ChunkSize };

        RetentionResult result = Retention.Compute(vector.Q, vector.K, vector.V, vector.LogG, options: options);

        Compare.Within(Compare.RelativeError(result.Output.ToSingleArray(), vector.Y.ToSingleArray()), 1e-4, $"{name} chunk {vector.ChunkSize}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Quadratic_MatchesReference(string name)
    {
        using VectorCase vector = VectorCase.Load(name);
        var options = new RetentionOptions { Degree = vector.Degree, Scale = vector.Scale, ChunkSize = 0 };

        RetentionResult result = Retention.Compute(vector.Q, vector.K, vector.V, vector.LogG, options: options);

        Compare.Within(Compare.RelativeError(result.Output.ToSingleArray(), vector.Y.ToSingleArray()), 1e-4, $"{name} quadratic");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ExpandedDim_MatchesCase(string name)
    {
        using VectorCase vector = VectorCase.Load(name);

        var basis = SymmetricPowerBasis.Get(vector.Q.Dim(3), vector.Degree);

        Assert.Equal(vector.ExpandedDim, basis.ExpandedDim);
    }
}
