using BenchmarkDotNet.Attributes;
using PowerRetention.Kernels;

namespace PowerRetention.Benchmarks;

/// <summary>
/// One chunk of 1024 tokens of one head on one thread, per phase: in-chunk attention, state query,
/// state update, and all three. Divide 1024 by the time for token-heads per second per core.
/// </summary>
[MemoryDiagnoser]
public class PhaseBenchmarks
{
    private const int Chunk = 1024;
    private ChunkEngine _engine = null!;
    private HeadState _state = null!;

    [Params("p2-d64", "p4-d32", "p2-d128")]
    public string Shape { get; set; } = "p2-d64";

    [Params(true, false)]
    public bool Gated { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        (int degree, int dim) = Shape switch
        {
            "p4-d32" => (4, 32),
            "p2-d128" => (2, 128),
            _ => (2, 64),
        };
        RetentionInputs inputs = SyntheticInputs.Create(1, 2 * Chunk, 1, dim, gating: Gated);
        RetentionProblem problem = RetentionProblem.Create(inputs.Q, inputs.K, inputs.V, inputs.LogG, null, new RetentionOptions { Degree = degree, ChunkSize = Chunk });
        _engine = new ChunkEngine(problem);
        _state = new HeadState(problem.ExpandedDim, dim);
        _engine.ProcessChunk(0, 0, 0, Chunk, _state, attention: false, queryState: false, updateState: true);
    }

    [Benchmark]
    public void Attention() => _engine.ProcessChunk(0, 0, Chunk, Chunk, _state, attention: true, queryState: false, updateState: false);

    [Benchmark]
    public void StateQuery() => _engine.ProcessChunk(0, 0, Chunk, Chunk, _state, attention: false, queryState: true, updateState: false);

    // The update decays the state each call; with gating it shrinks towards zero, which costs the same.
    [Benchmark]
    public void StateUpdate() => _engine.ProcessChunk(0, 0, Chunk, Chunk, _state, attention: false, queryState: false, updateState: true);

    [Benchmark(Baseline = true)]
    public void WholeChunk() => _engine.ProcessChunk(0, 0, Chunk, Chunk, _state, attention: true, queryState: true, updateState: true);
}
