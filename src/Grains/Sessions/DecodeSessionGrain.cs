using System.Diagnostics;
using System.IO.Hashing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using PowerRetention.Kernels;
using PowerRetention.Kernels.IO;

namespace PowerRetention.Grains;

/// <summary>
/// Hosts one decode session. The session is persisted as three storage entries: the record (sizes,
/// position, cache and last step, rewritten after every step) and two slots for the base state, the
/// state at the last fold of the cache. A new base goes to the slot the committed record does not name,
/// and only then is the record written, so a failure between the two writes leaves the committed
/// session readable. A step is applied in memory, written to storage, and only then committed; when
/// anything fails the live state is rebuilt from the committed snapshot.
/// </summary>
internal sealed partial class DecodeSessionGrain(
    [PersistentState("record", DecodeSessionStorage.StorageName)] IPersistentState<SessionStorageEntry> record,
    [PersistentState("base-0", DecodeSessionStorage.StorageName)] IPersistentState<SessionStorageEntry> base0,
    [PersistentState("base-1", DecodeSessionStorage.StorageName)] IPersistentState<SessionStorageEntry> base1,
    ComputeDevice device,
    IOptions<DecodeSessionOptions> options,
    ILogger<DecodeSessionGrain> logger) : Grain, IDecodeSessionGrain
{
    private readonly Guid _activationId = Guid.NewGuid();
    private SessionSnapshot? _committed;
    private SessionRunner? _runner;
    private string? _loadError;

    private string SessionId => this.GetPrimaryKeyString();

    private string Source => $"decode session '{SessionId}'";

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        if (!record.RecordExists || record.State.Data.Length == 0)
        {
            return;
        }

        try
        {
            // Grain state is read here on the grain's scheduler, because device threads may not touch it.
            byte[] recordBytes = record.State.Data;
            byte[][] baseBytes = [base0.State.Data, base1.State.Data];
            string source = Source;
            (_committed, _runner) = await device.RunAsync(_ => Load(source, recordBytes, baseBytes), cancellationToken);
            LogLoaded(SessionId, _committed.Position, _committed.Cache.Count, RuntimeIdentity);
        }
        catch (Exception error) when (error is FileFormatException or ArgumentException or InsufficientMemoryException)
        {
            // Kept so that every call reports it and DropAsync can still delete the entries.
            _loadError = error.Message;
            LogLoadFailed(error, SessionId);
        }
    }

    public Task<DecodeSessionInfo> StartAsync(DecodeSessionSpec spec)
    {
        RequireAbsent();
        SessionConfig config = SessionConfig.ForEmpty(spec);
        return StartWithAsync(config, "empty", null);
    }

    public async Task<DecodeSessionInfo> StartFromStateAsync(DecodeSessionSpec spec, byte[] stateFile)
    {
        RequireAbsent();
        ArgumentNullException.ThrowIfNull(stateFile);
        RetentionState state;
        try
        {
            state = await device.RunAsync(_ => StateFile.Deserialize(stateFile, "state file"), CancellationToken.None);
        }
        catch (Exception error) when (error is FileFormatException or InsufficientMemoryException)
        {
            LogStartRejected(SessionId, error.Message);
            throw new ArgumentException(error.Message, nameof(stateFile));
        }

        return await StartWithAsync(SessionConfig.ForState(spec, state, "state file"), "state file", state);
    }

    public async Task<DecodeSessionInfo> StartFromJobAsync(DecodeSessionSpec spec, Guid jobId)
    {
        RequireAbsent();
        string origin = $"job {jobId}";
        RetentionState state;
        try
        {
            state = await JobStateReader.ReadAsync(GrainFactory.GetGrain<IJobGrain>(jobId));
        }
        catch (InvalidOperationException error)
        {
            LogStartRejected(SessionId, error.Message);
            throw new ArgumentException($"Session '{SessionId}' cannot start from job {jobId}: {error.Message}", nameof(jobId));
        }

        return await StartWithAsync(SessionConfig.ForState(spec, state, origin), origin, state);
    }

    public async Task<DecodeStepResult> StepAsync(DecodeStepRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        SessionSnapshot committed = RequireSession();
        if (request.StepId == Guid.Empty)
        {
            throw new ArgumentException("The step id is empty. Choose a new Guid per step and reuse it only to retry that step.", nameof(request));
        }

        if (committed.LastStep is StepRecord last && last.StepId == request.StepId)
        {
            LogStepRepeated(SessionId, request.StepId, last.Position);
            return new DecodeStepResult(last.StepId, last.Position, last.Output, Repeated: true);
        }

        if (committed.FindRecent(request.StepId) is StepMark earlier)
        {
            throw new InvalidOperationException(
                $"Step {request.StepId} of session '{SessionId}' was already applied, ending at position {earlier.Position}; " +
                $"only the output of the last step ({committed.LastStep?.StepId}) is kept, so it cannot be returned again.");
        }

        // Exceptions leave the grain without inner exceptions, because Orleans may have no codec for them. The log keeps them.
        var timer = Stopwatch.StartNew();
        SessionStep step;
        try
        {
            step = await device.RunAsync(_ => ComputeStep(committed, request), CancellationToken.None);
            await PersistAsync(step.Next, step.BaseBytes);
        }
        catch (Exception error)
        {
            await RollBackAsync(committed);
            LogStepFailed(error, SessionId, request.StepId, committed.Position);
            if (error is ArgumentException)
            {
                throw;
            }

            throw new InvalidOperationException($"Step {request.StepId} of session '{SessionId}' failed and was not applied. The session is unchanged at position {committed.Position}. {error.GetType().Name}: {error.Message}");
        }

        _committed = step.Next;
        _runner!.Commit();
        LogStepApplied(SessionId, request.StepId, request.Q.Shape.Length > 1 ? request.Q.Shape[1] : 0, step.Next.Position, step.NewBase is not null, timer.Elapsed.TotalMilliseconds);
        return new DecodeStepResult(request.StepId, step.Next.Position, step.Output, Repeated: false);
    }

    public Task<DecodeSessionInfo?> GetInfoAsync()
    {
        if (_loadError is not null)
        {
            RequireSession();
        }

        if (_committed is null)
        {
            DeactivateOnIdle();
            return Task.FromResult<DecodeSessionInfo?>(null);
        }

        return Task.FromResult<DecodeSessionInfo?>(Info(_committed));
    }

    public async Task<byte[]> ExportAsync()
    {
        SessionSnapshot committed = RequireSession();
        long limit = options.Value.MaxStateBytes;
        if (committed.Config.StateBytes > limit)
        {
            throw new InvalidOperationException($"The state of session '{SessionId}' has {committed.Config.StateBytes} bytes, more than the {limit} bytes one export may carry (DecodeSessionOptions.MaxStateBytes).");
        }

        byte[] bytes = await device.RunAsync(_ => StateFile.Serialize(_runner!.ExportState()), CancellationToken.None);
        LogExported(SessionId, committed.Position, bytes.Length);
        return bytes;
    }

    public async Task DropAsync()
    {
        long position = _committed?.Position ?? 0;
        await record.ClearStateAsync();
        await base0.ClearStateAsync();
        await base1.ClearStateAsync();
        _committed = null;
        _runner = null;
        _loadError = null;
        DeactivateOnIdle();
        LogDropped(SessionId, position);
    }

    private async Task<DecodeSessionInfo> StartWithAsync(SessionConfig config, string origin, RetentionState? state)
    {
        long limit = options.Value.MaxStateBytes;
        if (config.StateBytes > limit || config.CacheBytes > limit)
        {
            throw new ArgumentException(
                $"Session '{SessionId}' would need {config.StateBytes} bytes of state (b={config.Batch}, h={config.Heads}, D={config.ExpandedDim}, e={config.ValueDim}) " +
                $"and {config.CacheBytes} bytes of cache, more than the {limit} bytes one storage entry may hold (DecodeSessionOptions.MaxStateBytes). Lower the degree, the head dimension or the switch-over length.",
                "spec");
        }

        SessionSnapshot snapshot = SessionSnapshot.Start(config, origin, state);
        (SessionRunner runner, byte[]? baseBytes) = await device.RunAsync(
            _ => (SessionRunner.Restore(snapshot), state is null ? null : StateFile.Serialize(state)),
            CancellationToken.None);
        if (baseBytes is not null)
        {
            snapshot = snapshot with { BaseStorage = new BaseReference(0, baseBytes.Length, XxHash64.HashToUInt64(baseBytes)) };
        }

        await PersistAsync(snapshot, baseBytes);
        _committed = snapshot;
        _runner = runner;
        LogStarted(SessionId, origin, config.Batch, config.Heads, config.QueryHeads, config.KeyDim, config.ValueDim, config.Degree, config.StateBytes);
        return Info(snapshot);
    }

    // Runs on a device thread: applies the step to the live state, then encodes what must be written.
    private SessionStep ComputeStep(SessionSnapshot committed, DecodeStepRequest request)
    {
        Tensor q = request.Q.ToTensor("Q");
        Tensor k = request.K.ToTensor("K");
        Tensor v = request.V.ToTensor("V");
        Tensor? logG = request.LogG?.ToTensor("log_G");
        SessionStep step = _runner!.Step(committed, request.StepId, q, k, v, logG);
        if (step.NewBase is null)
        {
            return step;
        }

        byte[] bytes = StateFile.Serialize(step.NewBase);
        int slot = committed.BaseStorage?.Slot == 0 ? 1 : 0;
        var reference = new BaseReference(slot, bytes.Length, XxHash64.HashToUInt64(bytes));
        return step with { Next = step.Next with { BaseStorage = reference }, BaseBytes = bytes };
    }

    // Writes a new base (when given) into its slot, then the record that names it.
    private async Task PersistAsync(SessionSnapshot snapshot, byte[]? baseBytes)
    {
        if (baseBytes is not null)
        {
            await WriteAsync(snapshot.BaseStorage!.Slot == 0 ? base0 : base1, baseBytes);
        }

        await WriteAsync(record, SessionRecordFormat.Encode(snapshot));
    }

    private static async Task WriteAsync(IPersistentState<SessionStorageEntry> entry, byte[] bytes)
    {
        SessionStorageEntry previous = entry.State;
        entry.State = new SessionStorageEntry { Data = bytes };
        try
        {
            await entry.WriteStateAsync();
        }
        catch
        {
            entry.State = previous;
            throw;
        }
    }

    private async Task RollBackAsync(SessionSnapshot committed)
    {
        if (_runner is not { Modified: true })
        {
            return;
        }

        try
        {
            _runner = await device.RunAsync(_ => SessionRunner.Restore(committed), CancellationToken.None);
        }
        catch (Exception error)
        {
            // The next activation loads the committed session from storage again.
            _loadError = $"rebuilding the state after a failed step failed: {error.Message}";
            DeactivateOnIdle();
            LogRollBackFailed(error, SessionId);
        }
    }

    // Runs on a device thread: decodes the record and its base, then replays the cache.
    private static (SessionSnapshot, SessionRunner) Load(string source, byte[] recordBytes, byte[][] baseBytes)
    {
        SessionSnapshot snapshot = SessionRecordFormat.Decode(recordBytes, source);
        if (snapshot.BaseStorage is BaseReference reference)
        {
            byte[] bytes = baseBytes[reference.Slot];
            ulong hash = XxHash64.HashToUInt64(bytes);
            if (bytes.LongLength != reference.Length || hash != reference.Hash)
            {
                throw new FileFormatException(source, $"base state slot {reference.Slot} has {bytes.LongLength} bytes with hash {hash:x16}, but the record names {reference.Length} bytes with hash {reference.Hash:x16}.");
            }

            RetentionState state = StateFile.Deserialize(bytes, $"{source} base state (slot {reference.Slot})");
            SessionConfig config = snapshot.Config;
            RetentionProblem.CheckState(state, config.Batch, config.Heads, config.KeyDim, config.ValueDim, config.Degree);
            snapshot = snapshot with { Base = state };
        }

        return (snapshot, SessionRunner.Restore(snapshot));
    }

    private void RequireAbsent()
    {
        if (_loadError is not null || _committed is not null)
        {
            throw new InvalidOperationException($"Session '{SessionId}' already exists{(_committed is null ? "" : $" at position {_committed.Position}")}. Drop it first or use another id.");
        }
    }

    private SessionSnapshot RequireSession()
    {
        if (_loadError is not null)
        {
            throw new InvalidOperationException($"Session '{SessionId}' could not be loaded from storage: {_loadError} Drop it to delete its entries.");
        }

        if (_committed is null)
        {
            DeactivateOnIdle();
            throw new InvalidOperationException($"Session '{SessionId}' not found. Start it first.");
        }

        return _committed;
    }

    private DecodeSessionInfo Info(SessionSnapshot snapshot)
    {
        SessionConfig config = snapshot.Config;
        return new DecodeSessionInfo(
            SessionId,
            config.Batch,
            config.Heads,
            config.QueryHeads,
            config.KeyDim,
            config.ValueDim,
            config.Degree,
            config.Scale,
            config.SwitchOverSeqLen,
            snapshot.Position,
            snapshot.Cache.Count,
            config.StateBytes,
            snapshot.Origin,
            snapshot.LastStep?.StepId,
            RuntimeIdentity,
            _activationId);
    }
}
