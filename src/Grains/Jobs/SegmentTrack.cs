namespace PowerRetention.Grains;

/// <summary>Where a segment is in its job.</summary>
internal enum SegmentStage
{
    /// <summary>Waiting for the client's streamed inputs.</summary>
    AwaitingInput,

    /// <summary>Phase 1 (summary) running.</summary>
    Phase1,

    /// <summary>Phase 1 done, or not needed; waiting for the incoming state.</summary>
    ReadyForPhase3,

    /// <summary>Phase 3 (outputs) running.</summary>
    Phase3,

    /// <summary>Outputs written.</summary>
    Done,
}

/// <summary>The coordinator's record of one segment.</summary>
internal sealed class SegmentTrack(int segment)
{
    public int Segment { get; } = segment;

    public int Attempt { get; set; }

    public SegmentStage Stage { get; set; } = SegmentStage.AwaitingInput;

    /// <summary>Whether the segment is inside the job's window of active segments and may start.</summary>
    public bool Admitted { get; set; }

    public bool InputsReady { get; set; }

    public bool OutputRead { get; set; }

    public long TokenHeadsDone { get; set; }

    public double[]? SummaryLogDecays { get; set; }
}
