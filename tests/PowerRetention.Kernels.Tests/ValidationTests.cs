using PowerRetention.Kernels.Tests.Support;

namespace PowerRetention.Kernels.Tests;

public sealed class ValidationTests
{
    private static readonly RetentionInputs s_inputs = Inputs.Make(time: 10, heads: 2, dim: 4, queryHeads: 4);

    [Fact]
    public void KeyBatchMismatch_NamesK()
    {
        var k = Tensor.Zeros(DataType.Float32, 2, 10, 2, 4);

        var error = Assert.Throws<ArgumentException>(() => Retention.Compute(s_inputs.Q, k, s_inputs.V));

        Assert.Equal("K", error.ParamName);
        Assert.Contains("(2, 10, 2, 4)", error.Message, StringComparison.Ordinal);
        Assert.Contains("must be 1", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ValueHeadMismatch_NamesV()
    {
        var v = Tensor.Zeros(DataType.Float32, 1, 10, 3, 4);

        var error = Assert.Throws<ArgumentException>(() => Retention.Compute(s_inputs.Q, s_inputs.K, v));

        Assert.Equal("V", error.ParamName);
        Assert.Contains("head count", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void QueryHeadsNotMultiple_NamesBothCounts()
    {
        var q = Tensor.Zeros(DataType.Float32, 1, 10, 3, 4);

        var error = Assert.Throws<ArgumentException>(() => Retention.Compute(q, s_inputs.K, s_inputs.V));

        Assert.Contains("hq=3", error.Message, StringComparison.Ordinal);
        Assert.Contains("h=2", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void WrongRank_NamesLayout()
    {
        var q = Tensor.Zeros(DataType.Float32, 10, 4, 4);

        var error = Assert.Throws<ArgumentException>(() => Retention.Compute(q, s_inputs.K, s_inputs.V));

        Assert.Contains("(b, t, hq, d)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LogGateShapeMismatch_NamesLogG()
    {
        var logG = Tensor.Zeros(DataType.Float32, 1, 9, 2);

        var error = Assert.Throws<ArgumentException>(() => Retention.Compute(s_inputs.Q, s_inputs.K, s_inputs.V, logG));

        Assert.Equal("log_G", error.ParamName);
    }

    [Fact]
    public void MixedDataTypes_Rejected()
    {
        var error = Assert.Throws<ArgumentException>(() => Retention.Compute(s_inputs.Q, s_inputs.K.ConvertTo(DataType.BFloat16), s_inputs.V));

        Assert.Contains("bf16", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(3)]
    [InlineData(0)]
    [InlineData(-2)]
    public void BadDegree_Rejected(int degree)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => Retention.Compute(s_inputs.Q, s_inputs.K, s_inputs.V, options: new RetentionOptions { Degree = degree }));

        Assert.Contains($"got {degree}", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NaNInQuery_NamesFirstIndex()
    {
        float[] values = s_inputs.Q.ToSingleArray();
        values[(((0 * 10) + 6) * 4 + 3) * 4 + 1] = float.NaN;
        values[(((0 * 10) + 8) * 4 + 0) * 4 + 0] = float.NaN;

        var error = Assert.Throws<ArgumentException>(() => Retention.Compute(Tensor.FromArray(values, 1, 10, 4, 4), s_inputs.K, s_inputs.V));

        Assert.Contains("Q[0, 6, 3, 1] = NaN", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void InfinityInValue_NamesIndex()
    {
        float[] values = s_inputs.V.ToSingleArray();
        values[5] = float.PositiveInfinity;

        var error = Assert.Throws<ArgumentException>(() => Retention.Compute(s_inputs.Q, s_inputs.K, Tensor.FromArray(values, 1, 10, 2, 4)));

        Assert.Contains("V[0, 0, 1, 1]", error.Message, StringComparison.Ordinal);
        Assert.Contains("not finite", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void PositiveLogGate_NamesIndex()
    {
        float[] gates = new float[20];
        gates[13] = 0.25f;

        var error = Assert.Throws<ArgumentException>(() => Retention.Compute(s_inputs.Q, s_inputs.K, s_inputs.V, Tensor.FromArray(gates, 1, 10, 2)));

        Assert.Contains("log_G[0, 6, 1] = 0.25", error.Message, StringComparison.Ordinal);
        Assert.Contains("positive", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void StateOfWrongDegree_Rejected()
    {
        var state = new RetentionState(1, 2, 4, 4, 4);

        var error = Assert.Throws<ArgumentException>(() => Retention.Compute(s_inputs.Q, s_inputs.K, s_inputs.V, initialState: state));

        Assert.Contains("D=35", error.Message, StringComparison.Ordinal);
        Assert.Contains("D=10", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void StateOfWrongHeads_Rejected()
    {
        var state = new RetentionState(1, 1, 4, 4, 2);

        var error = Assert.Throws<ArgumentException>(() => Retention.Compute(s_inputs.Q, s_inputs.K, s_inputs.V, initialState: state));

        Assert.Contains("h=1", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void StateTensorsOfWrongD_Rejected()
    {
        var values = Tensor.Zeros(DataType.Float32, 1, 1, 11, 4);
        var normalizer = Tensor.Zeros(DataType.Float32, 1, 1, 11);

        var error = Assert.Throws<ArgumentException>(() => RetentionState.FromTensors(values, normalizer, keyDim: 4, degree: 2));

        Assert.Contains("D=11", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void HugeState_ReportsBytesNeeded()
    {
        // d=64, p=8 has C(71, 8), about 1.06e10 features: far beyond any memory.
        var q = Tensor.Zeros(DataType.Float32, 1, 1, 1, 64);
        var v = Tensor.Zeros(DataType.Float32, 1, 1, 1, 64);

        var error = Assert.Throws<InsufficientMemoryException>(() => Retention.Compute(q, q, v, options: new RetentionOptions { Degree = 8 }));

        Assert.Contains("bytes", error.Message, StringComparison.Ordinal);
        Assert.Contains("D=10639125640", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NegativeChunkSize_Rejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Retention.Compute(s_inputs.Q, s_inputs.K, s_inputs.V, options: new RetentionOptions { ChunkSize = -1 }));
    }

    [Theory]
    [InlineData(0f)]
    [InlineData(-1f)]
    [InlineData(float.NaN)]
    public void BadScale_Rejected(float scale)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Retention.Compute(s_inputs.Q, s_inputs.K, s_inputs.V, options: new RetentionOptions { Scale = scale }));
    }
}
