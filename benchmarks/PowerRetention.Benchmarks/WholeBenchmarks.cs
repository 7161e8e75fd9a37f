using BenchmarkDotNet.Attributes;
using PowerRetention.Kernels;

namespace PowerRetention.Benchmarks;

/// <summary>The whole chunked path on every core: b=1, t=65,536, h=8, d=64, p=2, chunk 1024.</summary>
[MemoryDiagnoser]
[SimpleJob(launchCount: 1, warmupCount: 1, iterationCount: 3)]
public class WholeBenchmarks
{
    private RetentionInputs _inputs = null!;
    private Tensor _output = null!;

    [Params(DataType.Float32, DataType.BFloat16)]
    public DataType DataType { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _inputs = SyntheticInputs.Create(1, 65536, 8, 64, gating: true, dataType: DataType);
        _output = Tensor.Zeros(DataType, 1, 65536, 8, 64);
    }

    [Benchmark]
    public void Chunked() => Retention.Compute(_inputs.Q, _inputs.K, _inputs.V, _inputs.LogG, options: new RetentionOptions { ChunkSize = 1024 }, output: _output);
}
