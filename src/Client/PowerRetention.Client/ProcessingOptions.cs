using PowerRetention.Kernels;

namespace PowerRetention.Client;

/// <summary>Options of a job submitted through <see cref="RetentionClient"/>.</summary>
public sealed record ProcessingOptions
{
    /// <summary>Degree p; even, at least 2.</summary>
    public int Degree { get; init; } = 2;

    /// <summary>Scale; null means 1/sqrt(d).</summary>
    public float? Scale { get; init; }

    /// <summary>Tokens per chunk; 0 means one chunk per segment (the quadratic form within each segment); null lets the coordinator pick the fastest size for the shape.</summary>
    public int? ChunkSize { get; init; }

    /// <summary>Tokens per segment (rounded up to whole chunks); 0 lets the coordinator choose.</summary>
    public int SegmentTokens { get; init; }

    /// <summary>Whether to return the state after the last token.</summary>
    public bool ReturnFinalState { get; init; }

    /// <summary>The job's id; null picks a new one. A caller may set it to find the job in logs or to query it directly.</summary>
    public Guid? JobId { get; init; }

    /// <summary>How often the client polls the job's status.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(100);
}

/// <summary>Progress of a job, reported while it runs.</summary>
/// <param name="TokenHeadsDone">Output rows (token x query head x batch) finished.</param>
/// <param name="TokenHeadsTotal">All output rows of the job.</param>
public sealed record JobProgress(long TokenHeadsDone, long TokenHeadsTotal);

/// <summary>What a finished job returns.</summary>
/// <param name="Output">The output tensor for in-memory jobs; null for file jobs, whose output is the file.</param>
/// <param name="FinalState">The state after the last token, when requested.</param>
/// <param name="JobId">The job's id, for logs.</param>
/// <param name="Segments">Segments the job was cut into.</param>
/// <param name="SegmentTokens">Tokens per segment.</param>
/// <param name="StateBytesMoved">Bytes of state sent between grains (summaries, incoming and final states).</param>
/// <param name="SegmentRestarts">Segments recomputed after a worker was lost or failed.</param>
public sealed record JobResult(Tensor? Output, RetentionState? FinalState, Guid JobId, int Segments, int SegmentTokens, long StateBytesMoved, int SegmentRestarts);

/// <summary>A job that could not finish; the message says why.</summary>
public sealed class RetentionJobException : Exception
{
    /// <summary>Creates the exception.</summary>
    public RetentionJobException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with its cause.</summary>
    public RetentionJobException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
