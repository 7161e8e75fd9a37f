namespace PowerRetention.Kernels;

/// <summary>
/// What a segment of whole chunks contributes to the states after it: its total log-decay and its
/// state as if it began from zero. Summaries combine associatively:
/// (A1, S1) then (A2, S2) = (A1 * A2, A2 * S1 + S2).
/// </summary>
/// <param name="LogDecay">Sum of the segment's log-gates (0 without gating), so A = exp(LogDecay).</param>
/// <param name="State">The segment's state from a zero start.</param>
public sealed record SegmentSummary(double LogDecay, HeadState State)
{
    /// <summary>Returns the state after this segment when <paramref name="incoming"/> entered it, as a new object.</summary>
    public HeadState Apply(HeadState incoming)
    {
        HeadState result = incoming.Clone();
        result.DecayAndAdd((float)Math.Exp(LogDecay), State);
        return result;
    }

    /// <summary>Returns the summary of this segment followed by <paramref name="next"/>.</summary>
    public SegmentSummary Then(SegmentSummary next) => new(LogDecay + next.LogDecay, next.Apply(State));
}
