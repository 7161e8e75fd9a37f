namespace PowerRetention.Kernels;

/// <summary>
/// Runs the chunk kernels over a segment, a run of whole chunks of one (batch, key/value head), in the
/// three ways the chunked algorithm needs: straight through from a known incoming state (outputs
/// final), or split in two phases around the scan over segment summaries. Phase 1 computes in-chunk
/// attention and the segment's own states from zero, keeping un-normalised partial outputs; phase 3
/// adds what the incoming state contributes and normalises.
/// </summary>
internal static class SegmentRunner
{
    /// <summary>
    /// Processes tokens [start, end) from <paramref name="state"/> and writes final outputs. On return the
    /// state is the state after token end - 1 when <paramref name="advanceState"/> is set.
    /// </summary>
    public static void RunDirect(ChunkEngine engine, int batch, int kvHead, int start, int end, HeadState state, Tensor output, bool advanceState, Action<int>? onChunkDone, CancellationToken cancellationToken)
    {
        int chunk = engine.Problem.ChunkSize;
        for (int position = start; position < end; position += chunk)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int length = Math.Min(chunk, end - position);
            bool last = position + length >= end;
            engine.ProcessChunk(batch, kvHead, position, length, state, attention: true, queryState: true, updateState: advanceState || !last);
            engine.WriteNormalized(output, batch, kvHead, position, length);
            onChunkDone?.Invoke(length);
        }
    }

    /// <summary>
    /// Phase 1 over tokens [start, end): in-chunk attention plus the segment-local state, accumulated into
    /// <paramref name="partial"/> ([token - start][query head of group][e + 1] floats, zeroed by the caller).
    /// </summary>
    /// <returns>The segment summary: total log-decay and the state after the segment from a zero start.</returns>
    public static SegmentSummary RunPhase1(ChunkEngine engine, int batch, int kvHead, int start, int end, Span<float> partial, Action<int>? onChunkDone, CancellationToken cancellationToken)
    {
        RetentionProblem problem = engine.Problem;
        var state = new HeadState(problem.ExpandedDim, problem.ValueDim);
        double logDecay = 0;
        int chunk = problem.ChunkSize;
        for (int position = start; position < end; position += chunk)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int length = Math.Min(chunk, end - position);
            logDecay += engine.ProcessChunk(batch, kvHead, position, length, state, attention: true, queryState: true, updateState: true);
            engine.AccumulatePartial(partial, position - start, length);
            onChunkDone?.Invoke(length);
        }

        return new SegmentSummary(logDecay, state);
    }

    /// <summary>
    /// Computes only the segment summary of tokens [start, end): the state from a zero start and the
    /// total log-decay, without attention or outputs. This is the cheap first phase of a distributed
    /// job, whose second phase recomputes attention from the incoming state instead of keeping
    /// partial outputs, so a worker's memory never grows with the sequence.
    /// </summary>
    public static SegmentSummary RunSummaryOnly(ChunkEngine engine, int batch, int kvHead, int start, int end, CancellationToken cancellationToken)
    {
        RetentionProblem problem = engine.Problem;
        var state = new HeadState(problem.ExpandedDim, problem.ValueDim);
        double logDecay = 0;
        int chunk = problem.ChunkSize;
        for (int position = start; position < end; position += chunk)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int length = Math.Min(chunk, end - position);
            logDecay += engine.ProcessChunk(batch, kvHead, position, length, state, attention: false, queryState: false, updateState: true);
        }

        return new SegmentSummary(logDecay, state);
    }

    /// <summary>
    /// Phase 3 over tokens [start, end): adds the contribution of <paramref name="incoming"/>, the state at
    /// token start, to the phase 1 partial outputs and writes normalised outputs.
    /// </summary>
    public static void RunPhase3(ChunkEngine engine, int batch, int kvHead, int start, int end, HeadState incoming, ReadOnlySpan<float> partial, Tensor output, Action<int>? onChunkDone, CancellationToken cancellationToken)
    {
        int chunk = engine.Problem.ChunkSize;
        double gateOffset = 0;
        for (int position = start; position < end; position += chunk)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int length = Math.Min(chunk, end - position);
            gateOffset += engine.ProcessChunk(batch, kvHead, position, length, incoming, attention: false, queryState: true, updateState: false, queryGateOffset: (float)gateOffset);
            engine.WriteWithPartial(output, partial, position - start, batch, kvHead, position, length);
            onChunkDone?.Invoke(length);
        }
    }
}
