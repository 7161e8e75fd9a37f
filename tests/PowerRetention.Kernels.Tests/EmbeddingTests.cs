namespace PowerRetention.Kernels.Tests;

public sealed class EmbeddingTests
{
    [Theory]
    [InlineData(5, 2)]
    [InlineData(8, 4)]
    [InlineData(3, 6)]
    [InlineData(17, 2)]
    public void QueryDotKey_EqualsPowerOfDot(int dim, int degree)
    {
        var basis = SymmetricPowerBasis.Get(dim, degree);
        var random = new Random(dim * 31 + degree);
        for (int trial = 0; trial < 20; trial++)
        {
            float[] q = Enumerable.Range(0, dim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
            float[] k = Enumerable.Range(0, dim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
            var phiQ = new float[basis.ExpandedDim];
            var phiK = new float[basis.ExpandedDim];

            basis.EmbedQuery(q, phiQ);
            basis.EmbedKey(k, phiK);

            double dot = 0, embedded = 0;
            for (int i = 0; i < dim; i++)
            {
                dot += (double)q[i] * k[i];
            }

            for (int f = 0; f < basis.ExpandedDim; f++)
            {
                embedded += (double)phiQ[f] * phiK[f];
            }

            double expected = Math.Pow(dot, degree);
            Assert.True(Math.Abs(embedded - expected) <= 1e-5 * Math.Max(1, Math.Abs(expected)), $"trial {trial}: phiQ . phiK = {embedded}, (q . k)^p = {expected}");
        }
    }

    [Theory]
    [InlineData(64, 2, 2080)]
    [InlineData(64, 4, 766480)]
    [InlineData(32, 4, 52360)]
    [InlineData(8, 6, 1716)]
    [InlineData(1, 4, 1)]
    public void ExpandedDim_IsMultisetCount(int dim, int degree, int expected)
    {
        Assert.Equal(expected, SymmetricPowerBasis.ExpandedDimOf(dim, degree));
        Assert.Equal(expected, SymmetricPowerBasis.Get(dim, degree).ExpandedDim);
    }

    [Fact]
    public void Indices_AreSortedMultisetsInLexicographicOrder()
    {
        var basis = SymmetricPowerBasis.Get(4, 3);

        for (int f = 0; f < basis.ExpandedDim; f++)
        {
            for (int r = 1; r < 3; r++)
            {
                Assert.True(basis.Indices[f * 3 + r - 1] <= basis.Indices[f * 3 + r], $"feature {f} is not non-decreasing");
            }

            if (f > 0)
            {
                int[] previous = basis.Indices[((f - 1) * 3)..(f * 3)];
                int[] current = basis.Indices[(f * 3)..((f + 1) * 3)];
                Assert.True(previous.AsSpan().SequenceCompareTo(current) < 0, $"feature {f} does not follow feature {f - 1}");
            }
        }

        Assert.Equal([0, 0, 0], basis.Indices[..3]);
        Assert.Equal([3, 3, 3], basis.Indices[^3..]);
    }

    [Fact]
    public void KeyCoefficients_AreMultinomial()
    {
        var basis = SymmetricPowerBasis.Get(3, 4);

        // (0,0,0,0) -> 4!/4! = 1; (0,0,1,1) -> 4!/(2!2!) = 6; (0,1,2,2) -> 4!/2! = 12.
        Assert.Equal(1f, basis.KeyCoefficients[FeatureOf(basis, [0, 0, 0, 0])]);
        Assert.Equal(6f, basis.KeyCoefficients[FeatureOf(basis, [0, 0, 1, 1])]);
        Assert.Equal(12f, basis.KeyCoefficients[FeatureOf(basis, [0, 1, 2, 2])]);
    }

    [Fact]
    public void Get_ReturnsCachedInstance()
    {
        Assert.Same(SymmetricPowerBasis.Get(10, 2), SymmetricPowerBasis.Get(10, 2));
    }

    private static int FeatureOf(SymmetricPowerBasis basis, int[] indices)
    {
        for (int f = 0; f < basis.ExpandedDim; f++)
        {
            if (basis.Indices.AsSpan(f * basis.Degree, basis.Degree).SequenceEqual(indices))
            {
                return f;
            }
        }

        throw new InvalidOperationException($"No feature has indices [{string.Join(", ", indices)}].");
    }
}
