using PowerRetention.Client;
using PowerRetention.Kernels;

namespace PowerRetention.Grains.Tests;

[Collection(ClusterCollection.Name)]
public sealed class DistributedJobTests(OneSiloFixture oneSilo, ThreeSiloFixture threeSilos)
{
    private const int Time = 7 * 64;
    private const int ChunkSize = 32;

    public static TheoryData<int, int> SegmentsAndSilos() => new() { { 1, 1 }, { 2, 1 }, { 7, 1 }, { 1, 3 }, { 2, 3 }, { 7, 3 } };

    [Theory]
    [MemberData(nameof(SegmentsAndSilos))]
    public async Task StreamedJob_EqualsKernels(int segments, int silos)
    {
        RetentionClient client = Client(silos);
        RetentionInputs inputs = TestData.Inputs(Time, batch: 2);
        RetentionResult expected = Retention.Compute(inputs.Q, inputs.K, inputs.V, inputs.LogG, options: new RetentionOptions { ChunkSize = ChunkSize, ReturnFinalState = true });

        JobResult result = await client.ProcessAsync(inputs.Q, inputs.K, inputs.V, inputs.LogG, options: Options(segments));

        Assert.Equal(segments, result.Segments);
        TestData.Within(TestData.RelativeError(result.Output!.ToSingleArray(), expected.Output.ToSingleArray()), 1e-5, "output");
        for (int unit = 0; unit < expected.FinalState!.HeadStates.Count; unit++)
        {
            TestData.Within(TestData.RelativeError(result.FinalState!.HeadStates[unit].Values, expected.FinalState.HeadStates[unit].Values), 1e-5, $"final S of unit {unit}");
            TestData.Within(TestData.RelativeError(result.FinalState.HeadStates[unit].Normalizer, expected.FinalState.HeadStates[unit].Normalizer), 1e-5, $"final s of unit {unit}");
        }
    }

    [Theory]
    [MemberData(nameof(SegmentsAndSilos))]
    public async Task FileJob_EqualsKernels(int segments, int silos)
    {
        RetentionClient client = Client(silos);
        RetentionInputs inputs = TestData.Inputs(Time, seed: 12);
        float[] expected = Retention.Compute(inputs.Q, inputs.K, inputs.V, inputs.LogG, options: new RetentionOptions { ChunkSize = ChunkSize }).Output.ToSingleArray();
        (string folder, InputFiles files) = TestData.WriteNpy(inputs);
        string output = Path.Combine(folder, segments % 2 == 0 ? "y.safetensors" : "y.npy");

        JobResult result = await client.ProcessFilesAsync(files, output, options: Options(segments));

        Assert.Equal(segments, result.Segments);
        TestData.Within(TestData.RelativeError(TestData.ReadOutput(output), expected), 1e-5, "output file");
        Assert.DoesNotContain(TestData.FilesIn(folder), name => name.EndsWith(".partial", StringComparison.Ordinal));
        Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public async Task InitialState_ContinuesSequence()
    {
        RetentionClient client = Client(3);
        RetentionInputs inputs = TestData.Inputs(2 * Time, seed: 13);
        RetentionResult whole = Retention.Compute(inputs.Q, inputs.K, inputs.V, inputs.LogG, options: new RetentionOptions { ChunkSize = ChunkSize, ReturnFinalState = true });
        RetentionInputs first = Slice(inputs, 0, Time), second = Slice(inputs, Time, 2 * Time);

        JobResult firstResult = await client.ProcessAsync(first.Q, first.K, first.V, first.LogG, options: Options(3));
        JobResult secondResult = await client.ProcessAsync(second.Q, second.K, second.V, second.LogG, firstResult.FinalState, Options(2));

        float[] joined = [.. firstResult.Output!.ToSingleArray(), .. secondResult.Output!.ToSingleArray()];
        TestData.Within(TestData.RelativeError(joined, whole.Output.ToSingleArray()), 1e-5, "output over two jobs");
        TestData.Within(TestData.RelativeError(secondResult.FinalState!.HeadStates[1].Values, whole.FinalState!.HeadStates[1].Values), 1e-5, "final state");
    }

    [Fact]
    public async Task TwoJobsAtOnce_DoNotInterfere()
    {
        RetentionClient client = Client(3);
        RetentionInputs a = TestData.Inputs(Time, seed: 21), b = TestData.Inputs(Time, seed: 22, heads: 1, queryHeads: 3);
        var options = new RetentionOptions { ChunkSize = ChunkSize };
        float[] expectedA = Retention.Compute(a.Q, a.K, a.V, a.LogG, options: options).Output.ToSingleArray();
        float[] expectedB = Retention.Compute(b.Q, b.K, b.V, b.LogG, options: options).Output.ToSingleArray();

        Task<JobResult> jobA = client.ProcessAsync(a.Q, a.K, a.V, a.LogG, options: Options(5));
        Task<JobResult> jobB = client.ProcessAsync(b.Q, b.K, b.V, b.LogG, options: Options(4));
        JobResult[] results = await Task.WhenAll(jobA, jobB);

        TestData.Within(TestData.RelativeError(results[0].Output!.ToSingleArray(), expectedA), 1e-5, "job A");
        TestData.Within(TestData.RelativeError(results[1].Output!.ToSingleArray(), expectedB), 1e-5, "job B");
    }

    [Fact]
    public async Task BFloat16Job_KeepsDataType()
    {
        RetentionClient client = Client(3);
        RetentionInputs inputs = TestData.Inputs(Time, seed: 23, dataType: DataType.BFloat16);
        Tensor expected = Retention.Compute(inputs.Q, inputs.K, inputs.V, inputs.LogG, options: new RetentionOptions { ChunkSize = ChunkSize }).Output;

        JobResult result = await client.ProcessAsync(inputs.Q, inputs.K, inputs.V, inputs.LogG, options: Options(3));

        Assert.Equal(DataType.BFloat16, result.Output!.DataType);
        TestData.Within(TestData.RelativeError(result.Output.ToSingleArray(), expected.ToSingleArray()), 1e-2, "bfloat16 output");
    }

    [Fact]
    public async Task StateBytes_DoNotGrowWithLength()
    {
        RetentionClient client = Client(3);
        RetentionInputs shorter = TestData.Inputs(Time, seed: 24), longer = TestData.Inputs(4 * Time, seed: 25);

        JobResult shortResult = await client.ProcessAsync(shorter.Q, shorter.K, shorter.V, shorter.LogG, options: Options(4));
        JobResult longResult = await client.ProcessAsync(longer.Q, longer.K, longer.V, longer.LogG, options: Options(4, 4 * Time));

        Assert.Equal(4, shortResult.Segments);
        Assert.Equal(4, longResult.Segments);
        Assert.Equal(shortResult.StateBytesMoved, longResult.StateBytesMoved);
        Assert.True(shortResult.StateBytesMoved > 0, "no state bytes were counted");
    }

    internal static ProcessingOptions Options(int segments, int time = Time) => new()
    {
        ChunkSize = ChunkSize,
        SegmentTokens = (time + segments - 1) / segments,
        ReturnFinalState = true,
        PollInterval = TimeSpan.FromMilliseconds(20),
    };

    private RetentionClient Client(int silos) => silos == 1 ? oneSilo.Client : threeSilos.Client;

    private static RetentionInputs Slice(RetentionInputs inputs, int start, int end)
    {
        static Tensor Cut(Tensor tensor, int start, int end)
        {
            int[] shape = tensor.Shape.ToArray();
            long inner = tensor.ElementCount / ((long)shape[0] * shape[1]);
            var values = new float[(end - start) * inner];
            tensor.Storage.Read(start * inner, values);
            shape[1] = end - start;
            return Tensor.FromArray(values, shape);
        }

        return new RetentionInputs(Cut(inputs.Q, start, end), Cut(inputs.K, start, end), Cut(inputs.V, start, end), Cut(inputs.LogG!, start, end));
    }
}
