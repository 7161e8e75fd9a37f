using PowerRetention.Kernels.Tests.Support;

namespace PowerRetention.Kernels.Tests;

public sealed class ChunkedRetentionTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(64)]
    [InlineData(100)]
    [InlineData(1024)]
    [InlineData(5000)]
    public void ChunkSize_DoesNotChangeOutput(int chunkSize)
    {
        RetentionInputs inputs = Inputs.Make(time: 300, heads: 2, dim: 12, queryHeads: 4);
        double[] expected = Inputs.Reference(inputs, degree: 2);

        RetentionResult result = Retention.Compute(inputs.Q, inputs.K, inputs.V, inputs.LogG, options: new RetentionOptions { ChunkSize = chunkSize });

        Compare.Within(Compare.RelativeError(result.Output.ToSingleArray(), expected), 1e-4, $"chunk {chunkSize}");
    }

    [Theory]
    [InlineData(2, 16)]
    [InlineData(4, 8)]
    [InlineData(6, 5)]
    public void Degree_MatchesQuadraticForm(int degree, int dim)
    {
        RetentionInputs inputs = Inputs.Make(time: 150, heads: 1, dim: dim);
        double[] expected = Inputs.Reference(inputs, degree);

        RetentionResult result = Retention.Compute(inputs.Q, inputs.K, inputs.V, inputs.LogG, options: new RetentionOptions { Degree = degree, ChunkSize = 32 });

        Compare.Within(Compare.RelativeError(result.Output.ToSingleArray(), expected), 1e-4, $"degree {degree}");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void GroupedQueries_MatchQuadraticForm(int ratio)
    {
        RetentionInputs inputs = Inputs.Make(time: 130, heads: 2, dim: 16, queryHeads: 2 * ratio, batch: 2);
        double[] expected = Inputs.Reference(inputs, degree: 2);

        RetentionResult result = Retention.Compute(inputs.Q, inputs.K, inputs.V, inputs.LogG, options: new RetentionOptions { ChunkSize = 40 });

        Compare.Within(Compare.RelativeError(result.Output.ToSingleArray(), expected), 1e-4, $"ratio {ratio}");
    }

    [Theory]
    [InlineData(12, 12)]
    [InlineData(20, 7)]
    [InlineData(9, 33)]
    public void OddDims_MatchQuadraticForm(int keyDim, int valueDim)
    {
        RetentionInputs inputs = Inputs.Make(time: 77, heads: 1, dim: keyDim, valueDim: valueDim);
        double[] expected = Inputs.Reference(inputs, degree: 2);

        RetentionResult result = Retention.Compute(inputs.Q, inputs.K, inputs.V, inputs.LogG, options: new RetentionOptions { ChunkSize = 19 });

        Compare.Within(Compare.RelativeError(result.Output.ToSingleArray(), expected), 1e-4, $"d={keyDim}, e={valueDim}");
    }

    [Fact]
    public void Ungated_MatchesQuadraticForm()
    {
        RetentionInputs inputs = Inputs.Make(time: 200, heads: 2, dim: 16, gating: false);
        double[] expected = Inputs.Reference(inputs, degree: 2);

        RetentionResult result = Retention.Compute(inputs.Q, inputs.K, inputs.V, options: new RetentionOptions { ChunkSize = 64 });

        Compare.Within(Compare.RelativeError(result.Output.ToSingleArray(), expected), 1e-4, "ungated");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(7)]
    public void Segmented_MatchesQuadraticForm(int workers)
    {
        // One (batch, head) unit and several workers: the sequence is cut into segments joined by the scan.
        RetentionInputs inputs = Inputs.Make(time: 230, heads: 1, dim: 8, queryHeads: 2);
        RetentionInputs history = Inputs.Make(time: 50, heads: 1, dim: 8, seed: 3);
        RetentionState initial = Retention.Compute(history.Q, history.K, history.V, history.LogG, options: new RetentionOptions { ReturnFinalState = true }).FinalState!;
        double[] expected = Inputs.Reference(inputs, degree: 2, initialState: initial);

        RetentionResult result = Retention.Compute(inputs.Q, inputs.K, inputs.V, inputs.LogG, initial, new RetentionOptions { ChunkSize = 16, MaxDegreeOfParallelism = workers, ReturnFinalState = true });

        Compare.Within(Compare.RelativeError(result.Output.ToSingleArray(), expected), 1e-4, $"{workers} workers");
    }

    [Fact]
    public void FinalState_MatchesDefinition()
    {
        RetentionInputs inputs = Inputs.Make(time: 101, heads: 2, dim: 6, valueDim: 5);
        var expected = ReferenceRetention.FinalState(inputs.K, inputs.V, inputs.LogG, degree: 2);

        RetentionState state = Retention.Compute(inputs.Q, inputs.K, inputs.V, inputs.LogG, options: new RetentionOptions { ChunkSize = 32, ReturnFinalState = true }).FinalState!;

        for (int head = 0; head < 2; head++)
        {
            Compare.Within(Compare.RelativeError(state.HeadStates[head].Values, expected[head].Values), 1e-5, $"S of head {head}");
            Compare.Within(Compare.RelativeError(state.HeadStates[head].Normalizer, expected[head].Normalizer), 1e-5, $"s of head {head}");
        }
    }

    [Theory]
    [InlineData(1, 32)]
    [InlineData(7, 32)]
    [InlineData(37, 16)]
    public void TwoCalls_EqualOneCall(int workers, int chunkSize)
    {
        RetentionInputs inputs = Inputs.Make(time: 180, heads: 2, dim: 8, queryHeads: 4);
        var options = new RetentionOptions { ChunkSize = chunkSize, ReturnFinalState = true, MaxDegreeOfParallelism = workers };
        RetentionResult whole = Retention.Compute(inputs.Q, inputs.K, inputs.V, inputs.LogG, options: options);

        // Split off the chunk grid so the second call starts mid-chunk.
        int split = 71;
        RetentionInputs first = Inputs.SliceTime(inputs, 0, split);
        RetentionInputs second = Inputs.SliceTime(inputs, split, 180);
        RetentionResult firstResult = Retention.Compute(first.Q, first.K, first.V, first.LogG, options: options);
        RetentionResult secondResult = Retention.Compute(second.Q, second.K, second.V, second.LogG, firstResult.FinalState, options);

        float[] joined = [.. firstResult.Output.ToSingleArray(), .. secondResult.Output.ToSingleArray()];
        Compare.Within(Compare.RelativeError(joined, whole.Output.ToSingleArray()), 1e-5, "output");
        for (int head = 0; head < 2; head++)
        {
            Compare.Within(Compare.RelativeError(secondResult.FinalState!.HeadStates[head].Values, whole.FinalState!.HeadStates[head].Values), 1e-5, $"final S of head {head}");
        }
    }

    [Fact]
    public void EmptySequence_ReturnsInitialState()
    {
        RetentionInputs inputs = Inputs.Make(time: 0, heads: 1, dim: 4);
        var initial = new RetentionState(1, 1, 4, 4, 2);
        initial.HeadStates[0].Values[3] = 2f;

        RetentionResult result = Retention.Compute(inputs.Q, inputs.K, inputs.V, inputs.LogG, initial, new RetentionOptions { ReturnFinalState = true });

        Assert.Equal(0, result.Output.ElementCount);
        Assert.Equal(2f, result.FinalState!.HeadStates[0].Values[3]);
    }

    [Fact]
    public void ZeroWeightRows_OutputZero()
    {
        // Zero queries give zero weights everywhere; the output must be 0, never NaN.
        RetentionInputs inputs = Inputs.Make(time: 40, heads: 1, dim: 4, gating: false);
        var zeroQ = Tensor.Zeros(DataType.Float32, 1, 40, 1, 4);

        float[] output = Retention.Compute(zeroQ, inputs.K, inputs.V, options: new RetentionOptions { ChunkSize = 16 }).Output.ToSingleArray();

        Assert.All(output, value => Assert.Equal(0f, value));
    }

    [Theory]
    [InlineData(DataType.Float16, 1e-3)]
    [InlineData(DataType.BFloat16, 8e-3)]
    public void HalfInputs_MatchReferenceOnRoundedInputs(DataType dataType, double bound)
    {
        // The kernels compute in float32; the only extra error is rounding each output to 16 bits,
        // a relative 2^-11 (float16) or 2^-8 (bfloat16) per element at most.
        RetentionInputs inputs = Inputs.Make(time: 120, heads: 2, dim: 16, dataType: dataType);
        double[] expected = Inputs.Reference(inputs, degree: 2);

        RetentionResult result = Retention.Compute(inputs.Q, inputs.K, inputs.V, inputs.LogG, options: new RetentionOptions { ChunkSize = 32 });

        Assert.Equal(dataType, result.Output.DataType);
        Compare.Within(Compare.RelativeError(result.Output.ToSingleArray(), expected), bound, dataType.ToString());
    }

    [Theory]
    [InlineData(DataType.Float16, 1e-2)]
    [InlineData(DataType.BFloat16, 5e-2)]
    public void HalfInputs_CloseToFloat32Result(DataType dataType, double bound)
    {
        // Rounding q and k by u = 2^-11 or 2^-8 moves each weight (q . k)^2 by about 2u relative per
        // factor; over a row of weights the output moves by a few u, so 20u bounds it with room.
        RetentionInputs single = Inputs.Make(time: 120, heads: 2, dim: 16);
        RetentionInputs half = new(single.Q.ConvertTo(dataType), single.K.ConvertTo(dataType), single.V.ConvertTo(dataType), single.LogG);
        var options = new RetentionOptions { ChunkSize = 32 };

        float[] expected = Retention.Compute(single.Q, single.K, single.V, single.LogG, options: options).Output.ToSingleArray();
        float[] actual = Retention.Compute(half.Q, half.K, half.V, half.LogG, options: options).Output.ToSingleArray();

        Compare.Within(Compare.RelativeError(actual, expected), bound, dataType.ToString());
    }

    [Fact]
    public void SwitchOver_UsesQuadraticFormBelowLength()
    {
        RetentionInputs inputs = Inputs.Make(time: 90, heads: 1, dim: 8);
        double[] expected = Inputs.Reference(inputs, degree: 2);

        RetentionResult result = Retention.Compute(inputs.Q, inputs.K, inputs.V, inputs.LogG, options: new RetentionOptions { ChunkSize = 8, SwitchOverSeqLen = 100 });

        Compare.Within(Compare.RelativeError(result.Output.ToSingleArray(), expected), 1e-4, "switch-over");
    }

    [Fact]
    public void Cancellation_StopsComputation()
    {
        RetentionInputs inputs = Inputs.Make(time: 256, heads: 1, dim: 8);
        using var source = new CancellationTokenSource();
        source.Cancel();

        Assert.ThrowsAny<OperationCanceledException>(() => Retention.Compute(inputs.Q, inputs.K, inputs.V, inputs.LogG, options: new RetentionOptions { ChunkSize = 16 }, cancellationToken: source.Token));
    }

    [Fact]
    public void Progress_ReportsEveryTokenHead()
    {
        RetentionInputs inputs = Inputs.Make(time: 100, heads: 2, dim: 8, queryHeads: 4);
        long last = 0;
        var progress = new SynchronousProgress(value => Interlocked.Exchange(ref last, Math.Max(last, value)));

        Retention.Compute(inputs.Q, inputs.K, inputs.V, inputs.LogG, options: new RetentionOptions { ChunkSize = 16 }, progress: progress);

        Assert.Equal(100 * 4, last);
    }

    private sealed class SynchronousProgress(Action<long> report) : IProgress<long>
    {
        public void Report(long value) => report(value);
    }
}
