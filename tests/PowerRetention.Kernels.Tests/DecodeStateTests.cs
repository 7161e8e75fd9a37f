using PowerRetention.Kernels.Tests.Support;

namespace PowerRetention.Kernels.Tests;

public sealed class DecodeStateTests
{
    [Theory]
    [InlineData(2, 1000, true)]
    [InlineData(2, 7, true)]
    [InlineData(4, 5, true)]
    [InlineData(2, 1, false)]
    public void TokenByToken_EqualsOneCall(int degree, int switchOver, bool gating)
    {
        RetentionInputs inputs = Inputs.Make(time: 60, heads: 2, dim: 8, queryHeads: 4, gating: gating);
        double[] expected = Inputs.Reference(inputs, degree);
        var decode = new DecodeState(1, 2, 4, 8, 8, degree, switchOverSeqLen: switchOver);

        var outputs = new List<float>();
        for (int t = 0; t < 60; t++)
        {
            RetentionInputs token = Inputs.SliceTime(inputs, t, t + 1);
            outputs.AddRange(decode.Step(token.Q, token.K, token.V, token.LogG).ToSingleArray());
        }

        Compare.Within(Compare.RelativeError(outputs.ToArray(), expected), 1e-4, $"p={degree}, switch-over {switchOver}");
        Assert.Equal(60, decode.Position);
        Assert.True(decode.CacheLength <= switchOver, $"cache holds {decode.CacheLength} tokens, more than {switchOver}");
    }

    [Fact]
    public void MultiTokenSteps_UseEachTokensOwnGate()
    {
        RetentionInputs inputs = Inputs.Make(time: 45, heads: 1, dim: 8);
        double[] expected = Inputs.Reference(inputs, degree: 2);
        var decode = new DecodeState(1, 1, 1, 8, 8, switchOverSeqLen: 6);

        var outputs = new List<float>();
        int[] bounds = [0, 1, 5, 13, 14, 30, 45];
        for (int i = 0; i + 1 < bounds.Length; i++)
        {
            RetentionInputs step = Inputs.SliceTime(inputs, bounds[i], bounds[i + 1]);
            outputs.AddRange(decode.Step(step.Q, step.K, step.V, step.LogG).ToSingleArray());
        }

        Compare.Within(Compare.RelativeError(outputs.ToArray(), expected), 1e-4, "multi-token steps");
    }

    [Fact]
    public void PrefillThenDecode_EqualsOneCall()
    {
        RetentionInputs inputs = Inputs.Make(time: 90, heads: 2, dim: 8, batch: 2);
        double[] expected = Inputs.Reference(inputs, degree: 2);
        RetentionInputs prefill = Inputs.SliceTime(inputs, 0, 70);
        RetentionResult prefillResult = Retention.Compute(prefill.Q, prefill.K, prefill.V, prefill.LogG, options: new RetentionOptions { ChunkSize = 16, ReturnFinalState = true });
        var decode = new DecodeState(2, 2, 2, 8, 8, switchOverSeqLen: 8, initialState: prefillResult.FinalState);

        RetentionInputs rest = Inputs.SliceTime(inputs, 70, 90);
        float[] tail = decode.Step(rest.Q, rest.K, rest.V, rest.LogG).ToSingleArray();

        double[] expectedTail = Inputs.SliceTime(Tensor.FromArray(expected.Select(x => (float)x).ToArray(), 2, 90, 2, 8), 70, 90).ToSingleArray().Select(x => (double)x).ToArray();
        Compare.Within(Compare.RelativeError(tail, expectedTail), 1e-4, "decode after prefill");
    }

    [Fact]
    public void ToState_EqualsPrefillFinalState()
    {
        RetentionInputs inputs = Inputs.Make(time: 33, heads: 1, dim: 6);
        var decode = new DecodeState(1, 1, 1, 6, 6, switchOverSeqLen: 10);
        decode.Step(inputs.Q, inputs.K, inputs.V, inputs.LogG);

        RetentionState state = decode.ToState();
        var expected = ReferenceRetention.FinalState(inputs.K, inputs.V, inputs.LogG, degree: 2);

        Compare.Within(Compare.RelativeError(state.HeadStates[0].Values, expected[0].Values), 1e-5, "S");
        Compare.Within(Compare.RelativeError(state.HeadStates[0].Normalizer, expected[0].Normalizer), 1e-5, "s");
    }

    [Fact]
    public void BadStep_LeavesStateUnchanged()
    {
        RetentionInputs inputs = Inputs.Make(time: 3, heads: 1, dim: 4);
        var decode = new DecodeState(1, 1, 1, 4, 4);
        decode.Step(inputs.Q, inputs.K, inputs.V, inputs.LogG);
        var badGate = Tensor.FromArray([0.5f], 1, 1, 1);
        RetentionInputs token = Inputs.SliceTime(inputs, 0, 1);

        var error = Assert.Throws<ArgumentException>(() => decode.Step(token.Q, token.K, token.V, badGate));

        Assert.Contains("log_G[0, 0, 0]", error.Message, StringComparison.Ordinal);
        Assert.Equal(3, decode.Position);
        Assert.Equal(3, decode.CacheLength);
    }
}
