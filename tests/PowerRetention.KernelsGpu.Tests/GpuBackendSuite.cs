using PowerRetention.Kernels;
using PowerRetention.Kernels.Gpu;
using PowerRetention.KernelsGpu.Tests.Support;

namespace PowerRetention.KernelsGpu.Tests;

/// <summary>
/// Checks a GPU backend against the CPU backend, the reference for every kernel, on shapes small
/// enough for ILGPU's CPU accelerator. Subclasses choose the accelerator and kernels.
/// </summary>
public abstract class GpuBackendSuite : IDisposable
{
    // float32 sums in another order than the CPU backend's: agreement to about 1e-6 is expected.
    private const double Tolerance = 1e-5;

    private readonly GpuBackend _backend;

    protected GpuBackendSuite(GpuBackend backend)
    {
        _backend = backend;
    }

    /// <summary>Problem shapes: d, e, p, gating, key/value heads, query heads.</summary>
    public static TheoryData<int, int, int, bool, int, int> Shapes() => new()
    {
        { 4, 3, 2, false, 1, 1 },
        { 8, 8, 2, true, 2, 4 },
        { 4, 5, 4, true, 1, 2 },
        { 6, 3, 4, false, 2, 2 },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void RunDirect_MatchesCpu(int keyDim, int valueDim, int degree, bool gated, int heads, int queryHeads)
    {
        RetentionProblem problem = MakeProblem(40, keyDim, valueDim, degree, gated, heads, queryHeads, chunk: 16);
        Tensor expectedOutput = ZeroOutput(problem);
        Tensor actualOutput = ZeroOutput(problem);

        for (int kvHead = 0; kvHead < heads; kvHead++)
        {
            var expectedState = new HeadState(problem.ExpandedDim, valueDim);
            var actualState = new HeadState(problem.ExpandedDim, valueDim);
            CpuBackend.Instance.RunDirect(problem, 0, kvHead, 0, 40, expectedState, expectedOutput, true, null, CancellationToken.None);
            _backend.RunDirect(problem, 0, kvHead, 0, 40, actualState, actualOutput, true, null, CancellationToken.None);

            Measure.Within(actualState.Values, expectedState.Values, Tolerance, $"S of head {kvHead}");
            Measure.Within(actualState.Normalizer, expectedState.Normalizer, Tolerance, $"s of head {kvHead}");
            Assert.False(actualState.IsZero);
        }

        Measure.Within(actualOutput.ToSingleArray(), expectedOutput.ToSingleArray(), Tolerance, "output");
    }

    [Theory]
    [InlineData(2, false)]
    [InlineData(4, true)]
    public void RunDirect_NonZeroInitialState(int degree, bool gated)
    {
        RetentionProblem problem = MakeProblem(40, 4, 3, degree, gated, 1, 2, chunk: 16);
        HeadState initial = CpuBackend.Instance.RunSummaryOnly(problem, 0, 0, 0, 13, CancellationToken.None).State;
        HeadState expectedState = initial.Clone();
        HeadState actualState = initial.Clone();
        Tensor expectedOutput = ZeroOutput(problem);
        Tensor actualOutput = ZeroOutput(problem);

        CpuBackend.Instance.RunDirect(problem, 0, 0, 13, 40, expectedState, expectedOutput, true, null, CancellationToken.None);
        _backend.RunDirect(problem, 0, 0, 13, 40, actualState, actualOutput, true, null, CancellationToken.None);

        Measure.Within(actualOutput.ToSingleArray(), expectedOutput.ToSingleArray(), Tolerance, "output after token 13");
        Measure.Within(actualState.Values, expectedState.Values, Tolerance, "final S");
        Measure.Within(actualState.Normalizer, expectedState.Normalizer, Tolerance, "final s");
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void RunSummaryOnly_MatchesCpu(int keyDim, int valueDim, int degree, bool gated, int heads, int queryHeads)
    {
        RetentionProblem problem = MakeProblem(40, keyDim, valueDim, degree, gated, heads, queryHeads, chunk: 16);

        SegmentSummary expected = CpuBackend.Instance.RunSummaryOnly(problem, 0, heads - 1, 5, 40, CancellationToken.None);
        SegmentSummary actual = _backend.RunSummaryOnly(problem, 0, heads - 1, 5, 40, CancellationToken.None);

        Assert.Equal(expected.LogDecay, actual.LogDecay, 1e-6);
        Measure.Within(actual.State.Values, expected.State.Values, Tolerance, "summary S");
        Measure.Within(actual.State.Normalizer, expected.State.Normalizer, Tolerance, "summary s");
    }

    [Fact]
    public void RunSummaryOnly_EmptyRangeIsZero()
    {
        RetentionProblem problem = MakeProblem(20, 4, 3, 2, true, 1, 1, chunk: 8);

        SegmentSummary summary = _backend.RunSummaryOnly(problem, 0, 0, 8, 8, CancellationToken.None);

        Assert.Equal(0, summary.LogDecay);
        Assert.True(summary.State.IsZero);
        Assert.All(summary.State.Values, value => Assert.Equal(0f, value));
    }

    [Fact]
    public void RunDirect_ReportsEveryChunk()
    {
        RetentionProblem problem = MakeProblem(40, 4, 3, 2, false, 1, 1, chunk: 16);
        var lengths = new List<int>();

        _backend.RunDirect(problem, 0, 0, 0, 40, new HeadState(problem.ExpandedDim, 3), ZeroOutput(problem), false, lengths.Add, CancellationToken.None);

        Assert.Equal([16, 16, 8], lengths);
    }

    [Fact]
    public void RunDirect_CancelledTokenThrows()
    {
        RetentionProblem problem = MakeProblem(40, 4, 3, 2, false, 1, 1, chunk: 16);
        using var cancellation = new CancellationTokenSource();
        cancellation.Cancel();

        Assert.ThrowsAny<OperationCanceledException>(() =>
            _backend.RunDirect(problem, 0, 0, 0, 40, new HeadState(problem.ExpandedDim, 3), ZeroOutput(problem), true, null, cancellation.Token));
    }

    [Fact]
    public void Compute_WithBackendMatchesCpu()
    {
        RetentionInputs inputs = SyntheticInputs.Create(2, 24, 1, 4, queryHeads: 2, valueDim: 3, gating: true, seed: 11);
        var cpuOptions = new RetentionOptions { Degree = 2, ChunkSize = 8, ReturnFinalState = true };

        RetentionResult expected = Retention.Compute(inputs.Q, inputs.K, inputs.V, inputs.LogG, options: cpuOptions);
        RetentionResult actual = Retention.Compute(inputs.Q, inputs.K, inputs.V, inputs.LogG, options: cpuOptions with { Backend = _backend });

        Measure.Within(actual.Output.ToSingleArray(), expected.Output.ToSingleArray(), Tolerance, "output");
        for (int batch = 0; batch < 2; batch++)
        {
            Measure.Within(actual.FinalState![batch, 0].Values, expected.FinalState![batch, 0].Values, Tolerance, $"final S of batch {batch}");
        }
    }

    [Fact]
    public void RunDirect_BFloat16MatchesCpu()
    {
        RetentionInputs inputs = SyntheticInputs.Create(1, 40, 1, 8, queryHeads: 2, valueDim: 8, gating: true, seed: 5, dataType: DataType.BFloat16);
        RetentionProblem problem = RetentionProblem.Create(inputs.Q, inputs.K, inputs.V, inputs.LogG, null, new RetentionOptions { Degree = 2, ChunkSize = 16 });
        Tensor expectedOutput = ZeroOutput(problem);
        Tensor actualOutput = ZeroOutput(problem);

        CpuBackend.Instance.RunDirect(problem, 0, 0, 0, 40, new HeadState(problem.ExpandedDim, 8), expectedOutput, false, null, CancellationToken.None);
        _backend.RunDirect(problem, 0, 0, 0, 40, new HeadState(problem.ExpandedDim, 8), actualOutput, false, null, CancellationToken.None);

        Measure.Within(actualOutput.ToSingleArray(), expectedOutput.ToSingleArray(), Tolerance, "bfloat16 output");
    }

    [Fact]
    public void RunDirect_ZeroRowsOutputZero()
    {
        // All-zero keys give all-zero weights, so every output row is 0, never NaN.
        var q = Tensor.FromArray(Enumerable.Range(0, 20 * 4).Select(i => (float)Math.Sin(i)).ToArray(), 1, 20, 1, 4);
        var k = Tensor.Zeros(DataType.Float32, 1, 20, 1, 4);
        var v = Tensor.FromArray(Enumerable.Range(0, 20 * 3).Select(i => (float)i).ToArray(), 1, 20, 1, 3);
        RetentionProblem problem = RetentionProblem.Create(q, k, v, null, null, new RetentionOptions { Degree = 2, ChunkSize = 8 });
        Tensor output = Tensor.FromArray(Enumerable.Repeat(float.NaN, 20 * 3).ToArray(), 1, 20, 1, 3);

        _backend.RunDirect(problem, 0, 0, 0, 20, new HeadState(problem.ExpandedDim, 3), output, true, null, CancellationToken.None);

        Assert.All(output.ToSingleArray(), value => Assert.Equal(0f, value));
    }

    public void Dispose()
    {
        _backend.Dispose();
        GC.SuppressFinalize(this);
    }

    private static RetentionProblem MakeProblem(int time, int keyDim, int valueDim, int degree, bool gated, int heads, int queryHeads, int chunk)
    {
        RetentionInputs inputs = SyntheticInputs.Create(1, time, heads, keyDim, queryHeads, valueDim, gated, seed: (keyDim * 31) + degree);
        return RetentionProblem.Create(inputs.Q, inputs.K, inputs.V, inputs.LogG, null, new RetentionOptions { Degree = degree, ChunkSize = chunk });
    }

    private static Tensor ZeroOutput(RetentionProblem problem) =>
        Tensor.Zeros(DataType.Float32, problem.Batch, problem.Time, problem.QueryHeads, problem.ValueDim);
}

/// <summary>The suite on ILGPU's CPU accelerator with one thread per matrix output.</summary>
public sealed class CpuAcceleratorBackendTests() : GpuBackendSuite(GpuBackend.CreateCpuAccelerator())
{
    [Fact]
    public void Name_IsIlgpuCpu()
    {
        using GpuBackend backend = GpuBackend.CreateCpuAccelerator();

        Assert.Equal("ilgpu-cpu", backend.Name);
        Assert.False(backend.TiledKernels);
    }
}

/// <summary>The suite on ILGPU's CPU accelerator with the shared-memory tiled matrix product that CUDA uses.</summary>
public sealed class TiledCpuAcceleratorBackendTests() : GpuBackendSuite(GpuBackend.CreateCpuAccelerator(tiledKernels: true))
{
}
