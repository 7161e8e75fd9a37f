namespace PowerRetention.Grains;

/// <summary>Options of job coordinators, bound from configuration section "PowerRetention:Jobs".</summary>
public sealed class JobOptions
{
    /// <summary>How often the coordinator checks on running workers, to restart those whose silo died.</summary>
    public TimeSpan MonitorInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Attempts per segment before the job fails.</summary>
    public int MaxAttempts { get; set; } = 4;

    /// <summary>Segments per silo the automatic plan aims for, so silos stay busy while others finish.</summary>
    public int SegmentsPerSilo { get; set; } = 4;

    /// <summary>
    /// Lower bound on automatic segment sizes, in multiples of the feature count D: a segment of
    /// m * D tokens costs about m * e times more arithmetic than moving its state, so a larger
    /// value keeps compute well above communication.
    /// </summary>
    public int MinSegmentTokensPerFeature { get; set; } = 4;

    /// <summary>
    /// Segments per silo that may hold data at once (streamed inputs, a summary, an incoming state or
    /// unread output). Later segments start as earlier ones finish, so memory stays bounded by segment
    /// size however long the sequence is.
    /// </summary>
    public int ActiveSegmentsPerSilo { get; set; } = 4;
}
