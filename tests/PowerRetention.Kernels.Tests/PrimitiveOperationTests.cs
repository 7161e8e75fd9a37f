using PowerRetention.Kernels.Tests.Support;

namespace PowerRetention.Kernels.Tests;

public sealed class PrimitiveOperationTests
{
    [Fact]
    public void Attention_MatchesQuadraticForm()
    {
        RetentionInputs inputs = Inputs.Make(time: 70, heads: 2, dim: 8, queryHeads: 4);
        double[] expected = Inputs.Reference(inputs, degree: 4);

        Tensor y = Retention.Attention(inputs.Q, inputs.K, inputs.V, inputs.LogG, degree: 4);

        Compare.Within(Compare.RelativeError(y.ToSingleArray(), expected), 1e-4, "attention");
    }

    [Fact]
    public void AttentionParts_NormaliseToAttention()
    {
        RetentionInputs inputs = Inputs.Make(time: 50, heads: 1, dim: 8);
        float[] expected = Retention.Attention(inputs.Q, inputs.K, inputs.V, inputs.LogG).ToSingleArray();

        AttentionParts parts = Retention.AttentionUnnormalized(inputs.Q, inputs.K, inputs.V, inputs.LogG);

        float[] numerator = parts.Numerator.ToSingleArray();
        float[] denominator = parts.Denominator.ToSingleArray();
        float[] rowMax = parts.RowMax.ToSingleArray();
        var normalised = new float[numerator.Length];
        for (int i = 0; i < numerator.Length; i++)
        {
            normalised[i] = numerator[i] / denominator[i / 8];
        }

        Compare.Within(Compare.RelativeError(normalised, expected), 1e-5, "numerator / denominator");
        Assert.All(denominator, value => Assert.InRange(value, 1f, 50f));
        Assert.All(rowMax, value => Assert.True(float.IsFinite(value), $"row max {value} is not finite"));
    }

    [Fact]
    public void StateOperations_ComposeToChunkedRetention()
    {
        // The Python pipeline without gating: per-chunk attention, update_state, discumsum, query_state.
        const int time = 96, chunk = 32, chunks = time / chunk, dim = 6;
        RetentionInputs inputs = Inputs.Make(time: time, heads: 1, dim: dim, gating: false);
        float[] expected = Retention.Compute(inputs.Q, inputs.K, inputs.V, options: new RetentionOptions { ChunkSize = chunk }).Output.ToSingleArray();

        var k = new Tensor(inputs.K.Storage, 1, chunks, chunk, 1, dim);
        var v = new Tensor(inputs.V.Storage, 1, chunks, chunk, 1, dim);
        (Tensor deltaValues, Tensor deltaNormalizer) = Retention.UpdateState(k, v);
        var noDecay = Tensor.Zeros(DataType.Float32, 1, chunks, 1);
        Tensor states = Retention.Discumsum(deltaValues, noDecay);
        Tensor normalizers = Retention.Discumsum(deltaNormalizer, noDecay);
        Tensor entering = Inputs.SliceTime(states, 0, chunks);
        Tensor enteringNormalizer = Inputs.SliceTime(normalizers, 0, chunks);

        // Attention of each chunk on its own: chunks as batch entries.
        var qChunks = new Tensor(inputs.Q.Storage, chunks, chunk, 1, dim);
        var kChunks = new Tensor(inputs.K.Storage, chunks, chunk, 1, dim);
        var vChunks = new Tensor(inputs.V.Storage, chunks, chunk, 1, dim);
        AttentionParts parts = Retention.AttentionUnnormalized(qChunks, kChunks, vChunks);
        var partsAsSequence = new AttentionParts(
            new Tensor(parts.Numerator.Storage, 1, time, 1, dim),
            new Tensor(parts.Denominator.Storage, 1, time, 1),
            new Tensor(parts.RowMax.Storage, 1, time, 1));

        Tensor y = Retention.QueryState(new Tensor(inputs.Q.Storage, 1, chunks, chunk, 1, dim), entering, enteringNormalizer, partsAsSequence);

        Compare.Within(Compare.RelativeError(y.ToSingleArray(), expected), 1e-4, "composed pipeline");
    }

    [Fact]
    public void Discumsum_AppliesDecay()
    {
        var x = Tensor.FromArray([1f, 2f, 3f], 1, 3, 1);
        var logDecay = Tensor.FromArray([0f, MathF.Log(0.5f), MathF.Log(0.25f)], 1, 3, 1);

        float[] result = Retention.Discumsum(x, logDecay).ToSingleArray();

        // out = [0, 1, 0.5 * 1 + 2, 0.25 * 2.5 + 3].
        Assert.Equal([0f, 1f, 2.5f, 3.625f], result);
    }
}
