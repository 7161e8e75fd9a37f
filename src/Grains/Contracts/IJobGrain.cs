namespace PowerRetention.Grains;

/// <summary>
/// The coordinator of one prefill job, keyed by job id: plans segments, collects their summaries,
/// runs the exclusive scan, hands each worker its incoming state and returns the final state.
/// </summary>
public interface IJobGrain : IGrainWithGuidKey
{
    /// <summary>Validates the spec, plans segments and starts every segment whose inputs are available.</summary>
    /// <exception cref="ArgumentException">The spec or its input files are invalid; nothing was started.</exception>
    Task<JobPlan> StartAsync(JobSpec spec);

    /// <summary>Returns progress, state and, on failure, the reason.</summary>
    Task<JobStatus> GetStatusAsync();

    /// <summary>Stops every worker, frees their memory and deletes a partial output file.</summary>
    Task CancelAsync();

    /// <summary>Returns a block of the final state, or null past its end; the job must be completed.</summary>
    Task<StateBlock?> ReadFinalStateAsync(int unit, bool normalizer, long offset, int maxFloats);

    /// <summary>Returns the final state's header: batch, heads, d, e, p.</summary>
    Task<int[]> GetFinalStateShapeAsync();

    /// <summary>Called by the client when a segment's streamed inputs are uploaded.</summary>
    Task InputsUploadedAsync(int segment);

    /// <summary>Called by the client when it has read a segment's streamed output.</summary>
    Task OutputReadAsync(int segment);

    /// <summary>Receives a block of a summary or final state from a worker.</summary>
    Task ReceiveStateBlockAsync(StateBlock block);

    /// <summary>Called by a worker when phase 1 of an attempt is done and all summary blocks were sent.</summary>
    Task SummaryCompletedAsync(int segment, int attempt, double[] logDecays);

    /// <summary>Called by a worker when phase 3 of an attempt is done.</summary>
    Task SegmentCompletedAsync(int segment, int attempt);

    /// <summary>Called by a worker whose attempt failed; the job fails with the error.</summary>
    Task SegmentFailedAsync(int segment, int attempt, string error, bool badInput);
}

/// <summary>
/// A segment worker, keyed "jobId/segment": runs phase 1 (the segment's own state from zero) and
/// phase 3 (outputs from the incoming state) on its silo's compute device.
/// </summary>
public interface ISegmentWorkerGrain : IGrainWithStringKey
{
    /// <summary>Accepts an assignment; computing starts once inputs are available.</summary>
    Task AssignAsync(SegmentAssignment assignment);

    /// <summary>Stores one block of streamed input.</summary>
    Task UploadInputAsync(Guid jobId, InputBlock block);

    /// <summary>Starts phase 1 of the current attempt.</summary>
    Task StartPhase1Async(int attempt);

    /// <summary>Receives a block of the incoming state.</summary>
    Task ReceiveStateBlockAsync(StateBlock block);

    /// <summary>Starts phase 3 of the current attempt with the incoming state received so far.</summary>
    Task StartPhase3Async(int attempt, bool sendFinalState);

    /// <summary>Returns the worker's phase and progress.</summary>
    Task<WorkerStatus> GetStatusAsync();

    /// <summary>Returns up to <paramref name="count"/> bytes of the streamed output from <paramref name="offset"/>; empty past the end.</summary>
    Task<byte[]> ReadOutputAsync(Guid jobId, long offset, int count);

    /// <summary>Stops any work and frees the worker's memory.</summary>
    Task ReleaseAsync();
}
