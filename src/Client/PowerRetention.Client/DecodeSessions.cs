using PowerRetention.Grains;
using PowerRetention.Kernels;
using PowerRetention.Kernels.IO;

namespace PowerRetention.Client;

public sealed partial class RetentionClient
{
    /// <summary>Starts an empty decode session in the cluster.</summary>
    /// <param name="spec">Sizes and options; h and d are required.</param>
    /// <param name="sessionId">The session's id; null picks a new one.</param>
    /// <param name="cancellationToken">Stops waiting; the session may still be started.</param>
    /// <exception cref="ArgumentException">A size or option is invalid.</exception>
    /// <exception cref="InvalidOperationException">A session with this id already exists.</exception>
    public async Task<DecodeSession> StartSessionAsync(DecodeSessionSpec spec, string? sessionId = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        IDecodeSessionGrain grain = SessionGrain(sessionId);
        DecodeSessionInfo info = await grain.StartAsync(spec).WaitAsync(cancellationToken);
        return new DecodeSession(grain, info);
    }

    /// <summary>Starts a decode session that continues from <paramref name="state"/>, which is sent to the cluster as state file bytes.</summary>
    /// <param name="state">The initial state; it sets b, h, d, e and p.</param>
    /// <param name="spec">hq, scale and switch-over length; any size given must match the state. Null means the defaults.</param>
    /// <param name="sessionId">The session's id; null picks a new one.</param>
    /// <param name="cancellationToken">Stops waiting; the session may still be started.</param>
    /// <exception cref="ArgumentException">The state disagrees with <paramref name="spec"/>, or an option is invalid.</exception>
    /// <exception cref="InvalidOperationException">A session with this id already exists.</exception>
    public async Task<DecodeSession> StartSessionFromStateAsync(RetentionState state, DecodeSessionSpec? spec = null, string? sessionId = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(state);
        IDecodeSessionGrain grain = SessionGrain(sessionId);
        DecodeSessionInfo info = await grain.StartFromStateAsync(spec ?? new DecodeSessionSpec(), StateFile.Serialize(state)).WaitAsync(cancellationToken);
        return new DecodeSession(grain, info);
    }

    /// <summary>Starts a decode session from a state file, whose bytes are sent to the cluster unchanged and checked there.</summary>
    /// <param name="path">A state file written by <see cref="StateFile.Write"/> or the powerret command line.</param>
    /// <param name="spec">hq, scale and switch-over length; any size given must match the file. Null means the defaults.</param>
    /// <param name="sessionId">The session's id; null picks a new one.</param>
    /// <param name="cancellationToken">Stops reading or waiting.</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="ArgumentException">The file is not a valid state file or disagrees with <paramref name="spec"/>; the message names the file and the field.</exception>
    /// <exception cref="InvalidOperationException">A session with this id already exists.</exception>
    public async Task<DecodeSession> StartSessionFromStateFileAsync(string path, DecodeSessionSpec? spec = null, string? sessionId = null, CancellationToken cancellationToken = default)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"{path}: file not found.", path);
        }

        byte[] bytes = await File.ReadAllBytesAsync(path, cancellationToken);
        IDecodeSessionGrain grain = SessionGrain(sessionId);
        try
        {
            DecodeSessionInfo info = await grain.StartFromStateAsync(spec ?? new DecodeSessionSpec(), bytes).WaitAsync(cancellationToken);
            return new DecodeSession(grain, info);
        }
        catch (ArgumentException error)
        {
            throw new ArgumentException($"{path}: {error.Message}", error.ParamName, error);
        }
    }

    /// <summary>
    /// Starts a decode session from the final state of a completed job that ran with
    /// <see cref="ProcessingOptions.ReturnFinalState"/>; the state moves between grains and never
    /// reaches this client.
    /// </summary>
    /// <param name="jobId">The job's id, <see cref="JobResult.JobId"/>.</param>
    /// <param name="spec">hq, scale and switch-over length; any size given must match the job. Null means the defaults.</param>
    /// <param name="sessionId">The session's id; null picks a new one.</param>
    /// <param name="cancellationToken">Stops waiting; the session may still be started.</param>
    /// <exception cref="ArgumentException">The job has no final state, or it disagrees with <paramref name="spec"/>.</exception>
    /// <exception cref="InvalidOperationException">A session with this id already exists.</exception>
    public async Task<DecodeSession> StartSessionFromJobAsync(Guid jobId, DecodeSessionSpec? spec = null, string? sessionId = null, CancellationToken cancellationToken = default)
    {
        IDecodeSessionGrain grain = SessionGrain(sessionId);
        DecodeSessionInfo info = await grain.StartFromJobAsync(spec ?? new DecodeSessionSpec(), jobId).WaitAsync(cancellationToken);
        return new DecodeSession(grain, info);
    }

    /// <summary>Returns a handle to an existing decode session, for example one started by another process.</summary>
    /// <exception cref="InvalidOperationException">No session has this id, or it could not be loaded from storage.</exception>
    public async Task<DecodeSession> OpenSessionAsync(string sessionId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(sessionId);
        IDecodeSessionGrain grain = Grains.GetGrain<IDecodeSessionGrain>(sessionId);
        DecodeSessionInfo info = await grain.GetInfoAsync().WaitAsync(cancellationToken)
            ?? throw new InvalidOperationException($"Decode session '{sessionId}' not found in the {Description}.");
        return new DecodeSession(grain, info);
    }

    private IDecodeSessionGrain SessionGrain(string? sessionId)
    {
        if (sessionId is not null)
        {
            ArgumentException.ThrowIfNullOrWhiteSpace(sessionId);
        }

        return Grains.GetGrain<IDecodeSessionGrain>(sessionId ?? Guid.NewGuid().ToString("N"));
    }
}
