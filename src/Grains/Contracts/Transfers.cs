namespace PowerRetention.Grains;

/// <summary>What a block of state belongs to.</summary>
public enum StateRole
{
    /// <summary>A segment summary from a worker (its state from a zero start).</summary>
    Summary,

    /// <summary>The state entering a segment, from the coordinator.</summary>
    Incoming,

    /// <summary>The state after the last token, from the last segment's worker.</summary>
    Final,
}

/// <summary>
/// One block of a state on the wire: floats of one head's S (or s) starting at <see cref="Offset"/>,
/// as raw little-endian bytes. States travel in blocks well under the message size limit.
/// </summary>
[GenerateSerializer, Immutable, Alias("powerret.StateBlock")]
public sealed record StateBlock(
    [property: Id(0)] StateRole Role,
    [property: Id(1)] int Segment,
    [property: Id(2)] int Attempt,
    [property: Id(3)] int Unit,
    [property: Id(4)] bool IsNormalizer,
    [property: Id(5)] long Offset,
    [property: Id(6)] byte[] Data);

/// <summary>A block of one streamed input tensor for one segment: raw bytes in the job's data type.</summary>
/// <param name="Tensor">q, k, v or log_g.</param>
/// <param name="Batch">Batch entry the block belongs to.</param>
/// <param name="ByteOffset">Offset within that batch entry's slice of the segment.</param>
[GenerateSerializer, Immutable, Alias("powerret.InputBlock")]
public sealed record InputBlock(
    [property: Id(0)] string Tensor,
    [property: Id(1)] int Batch,
    [property: Id(2)] long ByteOffset,
    [property: Id(3)] byte[] Data);

/// <summary>What a worker is doing, as reported to the coordinator's monitor.</summary>
public enum WorkerPhase
{
    /// <summary>No assignment: a fresh activation, for example after its silo died.</summary>
    Idle,

    /// <summary>Assigned, waiting for streamed inputs or the incoming state.</summary>
    Waiting,

    /// <summary>Computing.</summary>
    Busy,

    /// <summary>Its current phase is done.</summary>
    Done,

    /// <summary>Its current phase failed; the job fails with the error.</summary>
    Failed,
}

/// <summary>
/// A worker's status, returned to the coordinator's monitor. <see cref="Error"/> and <see cref="BadInput"/>
/// describe the failure when <see cref="Phase"/> is <see cref="WorkerPhase.Failed"/>.
/// </summary>
[GenerateSerializer, Immutable, Alias("powerret.WorkerStatus")]
public sealed record WorkerStatus(
    [property: Id(0)] Guid JobId,
    [property: Id(1)] int Attempt,
    [property: Id(2)] WorkerPhase Phase,
    [property: Id(3)] long TokenHeadsDone,
    [property: Id(4)] bool HasInputs,
    [property: Id(5)] string? Silo,
    [property: Id(6)] string? Error = null,
    [property: Id(7)] bool BadInput = false);

/// <summary>A worker's assignment for one attempt at its segment.</summary>
[GenerateSerializer, Immutable, Alias("powerret.SegmentAssignment")]
public sealed record SegmentAssignment(
    [property: Id(0)] Guid JobId,
    [property: Id(1)] JobSpec Spec,
    [property: Id(2)] JobPlan Plan,
    [property: Id(3)] int Segment,
    [property: Id(4)] int Attempt,
    [property: Id(5)] string? OutputWritePath);
