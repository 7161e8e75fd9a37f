namespace PowerRetention.Grains;

/// <summary>Lifecycle of a job.</summary>
public enum JobState
{
    /// <summary>Created; waiting for streamed inputs or for the first segments to start.</summary>
    Pending,

    /// <summary>Segments are running.</summary>
    Running,

    /// <summary>Every segment is done and the output is complete.</summary>
    Completed,

    /// <summary>The job cannot finish; <see cref="JobStatus.Error"/> says why.</summary>
    Failed,

    /// <summary>Cancelled by the client.</summary>
    Cancelled,
}

/// <summary>A snapshot of a job for the client.</summary>
[GenerateSerializer, Immutable, Alias("powerret.JobStatus")]
public sealed record JobStatus(
    [property: Id(0)] Guid JobId,
    [property: Id(1)] JobState State,
    [property: Id(2)] long TokenHeadsDone,
    [property: Id(3)] long TokenHeadsTotal,
    [property: Id(4)] string? Error,
    [property: Id(5)] IReadOnlyList<int> SegmentsNeedingInput,
    [property: Id(6)] IReadOnlyList<int> SegmentsWithOutput,
    [property: Id(7)] long StateBytesMoved,
    [property: Id(8)] int SegmentRestarts,
    [property: Id(9)] string? CoordinatorSilo)
{
    /// <summary>Whether the job has stopped, successfully or not.</summary>
    public bool IsFinished => State is JobState.Completed or JobState.Failed or JobState.Cancelled;
}

/// <summary>The coordinator's plan: segment boundaries in tokens, whole chunks each.</summary>
[GenerateSerializer, Immutable, Alias("powerret.JobPlan")]
public sealed record JobPlan(
    [property: Id(0)] Guid JobId,
    [property: Id(1)] int ChunkSize,
    [property: Id(2)] int SegmentTokens,
    [property: Id(3)] int SegmentCount,
    [property: Id(4)] int SiloCount)
{
    /// <summary>Returns the first token of a segment.</summary>
    public int SegmentStart(int segment) => segment * SegmentTokens;

    /// <summary>Returns one past the last token of a segment.</summary>
    public int SegmentEnd(int segment, int time) => Math.Min(time, (segment + 1) * SegmentTokens);
}
