using PowerRetention.Kernels;

namespace PowerRetention.Grains;

/// <summary>
/// Everything a decode session persists, as of its last committed step. The decode state it describes
/// is <see cref="Base"/> continued by the tokens in <see cref="Cache"/>.
/// </summary>
/// <param name="Config">Sizes and options.</param>
/// <param name="Origin">What the session started from, for messages.</param>
/// <param name="Position">Tokens stepped since the session started.</param>
/// <param name="Base">The state at the last fold of the cache, or the initial state; null for a zero state.</param>
/// <param name="BaseStorage">Where <see cref="Base"/> is stored; null when it is null.</param>
/// <param name="Cache">Tokens stepped since <see cref="Base"/>.</param>
/// <param name="LastStep">The last applied step and its output, or null before the first step.</param>
/// <param name="RecentSteps">Ids of the last applied steps, newest last, including <see cref="LastStep"/>.</param>
internal sealed record SessionSnapshot(
    SessionConfig Config,
    string Origin,
    long Position,
    RetentionState? Base,
    BaseReference? BaseStorage,
    CachedTokens Cache,
    StepRecord? LastStep,
    IReadOnlyList<StepMark> RecentSteps)
{
    /// <summary>How many step ids a session remembers to reject a late retry of an earlier step.</summary>
    public const int RecentStepLimit = 32;

    /// <summary>Creates the snapshot of a session that has not stepped yet.</summary>
    public static SessionSnapshot Start(SessionConfig config, string origin, RetentionState? initialState) =>
        new(config, origin, 0, initialState, null, CachedTokens.Empty, null, []);

    /// <summary>Returns the mark of an earlier step with this id, or null.</summary>
    public StepMark? FindRecent(Guid stepId)
    {
        foreach (StepMark mark in RecentSteps)
        {
            if (mark.StepId == stepId)
            {
                return mark;
            }
        }

        return null;
    }

    /// <summary>Returns <see cref="RecentSteps"/> with <paramref name="mark"/> appended, dropping the oldest beyond the limit.</summary>
    public IReadOnlyList<StepMark> WithRecent(StepMark mark) =>
        RecentSteps.Skip(Math.Max(0, RecentSteps.Count + 1 - RecentStepLimit)).Append(mark).ToArray();
}

/// <summary>Which storage slot holds a session's base state, with the length and hash its bytes must have.</summary>
/// <param name="Slot">0 or 1; a new base goes to the slot the committed record does not use.</param>
/// <param name="Length">Length of the state file bytes.</param>
/// <param name="Hash">XxHash64 of the state file bytes.</param>
internal sealed record BaseReference(int Slot, long Length, ulong Hash);

/// <summary>A step's id and the session position after it.</summary>
internal sealed record StepMark(Guid StepId, long Position);

/// <summary>The last applied step: its id, the position after it and its output.</summary>
internal sealed record StepRecord(Guid StepId, long Position, RawTensor Output);
