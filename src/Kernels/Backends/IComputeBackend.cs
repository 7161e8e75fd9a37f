namespace PowerRetention.Kernels;

/// <summary>
/// The segment kernels of chunked retention on one kind of hardware. A backend instance may be used
/// by several threads at once; each call works on one (batch, key/value head) and its own state.
/// </summary>
public interface IComputeBackend
{
    /// <summary>Short name for logs and the command line: "cpu", "cuda", ...</summary>
    string Name { get; }

    /// <summary>
    /// Processes tokens [start, end) of (batch, kvHead) from <paramref name="state"/> and writes normalised
    /// outputs to <paramref name="output"/> (same token indexing as the problem's inputs). With
    /// <paramref name="advanceState"/> the state is the state after token end - 1 on return.
    /// </summary>
    void RunDirect(RetentionProblem problem, int batch, int kvHead, int start, int end, HeadState state, Tensor output, bool advanceState, Action<int>? onChunkDone, CancellationToken cancellationToken);

    /// <summary>Computes the summary of tokens [start, end): the state from a zero start and the total log-decay.</summary>
    SegmentSummary RunSummaryOnly(RetentionProblem problem, int batch, int kvHead, int start, int end, CancellationToken cancellationToken);
}

/// <summary>The CPU backend: SIMD chunk kernels, one engine per calling thread.</summary>
public sealed class CpuBackend : IComputeBackend
{
    /// <summary>The shared instance; it holds no state between calls.</summary>
    public static CpuBackend Instance { get; } = new();

    /// <inheritdoc />
    public string Name => "cpu";

    /// <inheritdoc />
    public void RunDirect(RetentionProblem problem, int batch, int kvHead, int start, int end, HeadState state, Tensor output, bool advanceState, Action<int>? onChunkDone, CancellationToken cancellationToken) =>
        SegmentRunner.RunDirect(new ChunkEngine(problem), batch, kvHead, start, end, state, output, advanceState, onChunkDone, cancellationToken);

    /// <inheritdoc />
    public SegmentSummary RunSummaryOnly(RetentionProblem problem, int batch, int kvHead, int start, int end, CancellationToken cancellationToken) =>
        SegmentRunner.RunSummaryOnly(new ChunkEngine(problem), batch, kvHead, start, end, cancellationToken);
}
