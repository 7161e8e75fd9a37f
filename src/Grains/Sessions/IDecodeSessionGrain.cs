namespace PowerRetention.Grains;

/// <summary>
/// A decode session, keyed by session id: the state (S, s), the cache of recent keys and values and
/// the position, persisted in the silo's "powerret-sessions" grain storage after every step. Calls on
/// one session run one at a time.
/// </summary>
public interface IDecodeSessionGrain : IGrainWithStringKey
{
    /// <summary>Starts an empty session.</summary>
    /// <exception cref="ArgumentException">A size or option is invalid, or the state would be too large to persist.</exception>
    /// <exception cref="InvalidOperationException">A session with this id already exists.</exception>
    Task<DecodeSessionInfo> StartAsync(DecodeSessionSpec spec);

    /// <summary>Starts a session whose state is read from state file bytes.</summary>
    /// <exception cref="ArgumentException">The bytes are not a valid state file, or they disagree with a size given in <paramref name="spec"/>; the message names the field.</exception>
    /// <exception cref="InvalidOperationException">A session with this id already exists.</exception>
    Task<DecodeSessionInfo> StartFromStateAsync(DecodeSessionSpec spec, byte[] stateFile);

    /// <summary>
    /// Starts a session from the final state of a completed job that was asked to return it. The state
    /// is read from the job's coordinator grain inside the cluster, in blocks.
    /// </summary>
    /// <exception cref="ArgumentException">The job has no final state, or it disagrees with a size given in <paramref name="spec"/>.</exception>
    /// <exception cref="InvalidOperationException">A session with this id already exists.</exception>
    Task<DecodeSessionInfo> StartFromJobAsync(DecodeSessionSpec spec, Guid jobId);

    /// <summary>
    /// Appends tokens and returns their outputs; with several tokens each query sees exactly the keys
    /// before it and its own. A failed step leaves the session as it was.
    /// </summary>
    /// <exception cref="ArgumentException">An input has the wrong shape, data type or byte count, or contains NaN, infinity or a positive log-gate.</exception>
    /// <exception cref="InvalidOperationException">The session does not exist, or the step id belongs to an earlier step whose output is no longer kept.</exception>
    Task<DecodeStepResult> StepAsync(DecodeStepRequest request);

    /// <summary>Returns the session's sizes and position, or null when no session has this id.</summary>
    Task<DecodeSessionInfo?> GetInfoAsync();

    /// <summary>Returns the state after every token so far, with the cache folded in, as state file bytes.</summary>
    /// <exception cref="InvalidOperationException">The session does not exist, or the state is larger than one message may be.</exception>
    Task<byte[]> ExportAsync();

    /// <summary>Deletes the session from storage and deactivates it; the id may then start a new session.</summary>
    Task DropAsync();
}
