using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Placement;
using PowerRetention.Kernels;
using PowerRetention.Kernels.IO;

namespace PowerRetention.Grains;

/// <summary>
/// Coordinates one job. Phase 1 (segment summaries) runs on every segment but the last in parallel;
/// summaries are folded in order as they arrive, each fold yielding the state entering the next
/// segment, which then runs phase 3 (outputs). Segments start in order within a window of
/// <see cref="JobOptions.ActiveSegmentsPerSilo"/> per silo, so summaries and incoming states held at
/// once do not grow with the sequence length. A monitor timer restarts segments whose worker lost its
/// work, for example because its silo died.
/// </summary>
[PreferLocalPlacement]
internal sealed partial class JobGrain(ILogger<JobGrain> logger, IOptions<JobOptions> options) : Grain, IJobGrain
{
    private readonly JobOptions _options = options.Value;
    private JobSpec? _spec;
    private JobShape? _shape;
    private JobPlan? _plan;
    private JobState _state = JobState.Pending;
    private string? _error;
    private SegmentTrack[] _tracks = [];
    private HeadState[]?[] _incoming = [];
    private HeadState[]?[] _summaries = [];
    private HeadState[]? _final;
    private int _folded;
    private int _admitted;
    private int _expandedDim;
    private long _bytesMoved;
    private int _restarts;
    private IDisposable? _pendingOutput;
    private Action? _commitOutput;
    private string? _outputWritePath;
    private IGrainTimer? _monitor;

    private Guid JobId => this.GetPrimaryKey();

    private bool StreamsOutput => _spec!.OutputPath is null;

    public async Task<JobPlan> StartAsync(JobSpec spec)
    {
        if (_spec is not null)
        {
            throw new InvalidOperationException($"Job {JobId} was already started.");
        }

        try
        {
            _shape = Validate(spec);
            _spec = spec;
            _plan = await PlanAsync(spec, _shape);
            _expandedDim = (int)SymmetricPowerBasis.ExpandedDimOf(_shape.KeyDim, spec.Degree);
            CreateOutput(spec, _shape);
        }
        catch (Exception error) when (error is IOException or ArgumentException or InsufficientMemoryException or UnauthorizedAccessException)
        {
            _spec = null;
            LogRejected(JobId, error.Message);
            // No inner exception: Orleans has no codec for some of the causes (FileFormatException), and the
            // message already names the file and the problem. No parameter name either, so that clients
            // print the message without a " (Parameter ...)" suffix.
            string message = error is ArgumentException { ParamName: string name } ? error.Message.Replace($" (Parameter '{name}')", string.Empty, StringComparison.Ordinal) : error.Message;
            throw new ArgumentException(message);
        }

        int segments = _plan.SegmentCount;
        int units = _shape.Batch * _shape.Heads;
        _tracks = Enumerable.Range(0, segments).Select(s => new SegmentTrack(s)).ToArray();
        _incoming = new HeadState[]?[segments];
        _summaries = new HeadState[]?[segments];
        HeadState[] initial = spec.InitialState is null
            ? StateTransfer.Zeros(units, _expandedDim, _shape.ValueDim)
            : StateFile.Deserialize(spec.InitialState, "initial state").HeadStates.ToArray();
        if (segments == 0)
        {
            _final = initial;
            Complete();
            return _plan;
        }

        _incoming[0] = initial;
        _state = JobState.Running;
        RetentionTelemetry.JobsRunning.Add(1);
        LogStarted(JobId, _shape.Time, segments, _plan.SegmentTokens, _plan.SiloCount);

        await Task.WhenAll(_tracks.Select(track => Worker(track.Segment).AssignAsync(Assignment(track))));
        await AdmitAsync();

        _monitor = this.RegisterGrainTimer(MonitorAsync, new GrainTimerCreationOptions(_options.MonitorInterval, _options.MonitorInterval) { KeepAlive = true });
        return _plan;
    }

    public Task<JobStatus> GetStatusAsync()
    {
        long total = _shape is null ? 0 : (long)_shape.Batch * _shape.Time * _shape.QueryHeads;
        long done = _state == JobState.Completed ? total : _tracks.Sum(t => t.Stage == SegmentStage.Done ? SegmentTokenHeads(t.Segment) : t.TokenHeadsDone);
        int[] needingInput = _spec?.Input == InputKind.Streamed
            ? _tracks.Where(t => t.Admitted && t.Stage == SegmentStage.AwaitingInput && !t.InputsReady).Select(t => t.Segment).ToArray()
            : [];
        int[] withOutput = _spec is not null && StreamsOutput
            ? _tracks.Where(t => t.Stage == SegmentStage.Done && !t.OutputRead).Select(t => t.Segment).ToArray()
            : [];
        return Task.FromResult(new JobStatus(JobId, _state, done, total, _error, needingInput, withOutput, _bytesMoved, _restarts, RuntimeIdentity));
    }

    public async Task CancelAsync()
    {
        if (_state is JobState.Completed or JobState.Failed or JobState.Cancelled)
        {
            return;
        }

        RetentionTelemetry.RecordJobStopped(_state, failed: false);
        _state = JobState.Cancelled;
        LogCancelled(JobId);
        await StopAsync();
    }

    public Task<StateBlock?> ReadFinalStateAsync(int unit, bool normalizer, long offset, int maxFloats)
    {
        if (_state != JobState.Completed || _final is null)
        {
            throw new InvalidOperationException($"Job {JobId} has no final state: it is {_state} and {(_spec?.ReturnFinalState == true ? "was" : "was not")} asked to return one.");
        }

        float[] source = normalizer ? _final[unit].Normalizer : _final[unit].Values;
        if (offset >= source.LongLength)
        {
            return Task.FromResult<StateBlock?>(null);
        }

        int count = (int)Math.Min(Math.Min(maxFloats, StateTransfer.BlockFloats), source.LongLength - offset);
        byte[] data = System.Runtime.InteropServices.MemoryMarshal.AsBytes(source.AsSpan((int)offset, count)).ToArray();
        return Task.FromResult<StateBlock?>(new StateBlock(StateRole.Final, -1, 0, unit, normalizer, offset, data));
    }

    public Task<int[]> GetFinalStateShapeAsync()
    {
        if (_shape is null || _spec is null)
        {
            throw new InvalidOperationException($"Job {JobId} was not started.");
        }

        return Task.FromResult(new[] { _shape.Batch, _shape.Heads, _shape.KeyDim, _shape.ValueDim, _spec.Degree });
    }

    public async Task InputsUploadedAsync(int segment)
    {
        SegmentTrack track = Track(segment);
        track.InputsReady = true;
        if (_state == JobState.Running && track.Admitted && track.Stage == SegmentStage.AwaitingInput)
        {
            await ResumeAsync(track);
        }
    }

    public async Task OutputReadAsync(int segment)
    {
        SegmentTrack track = Track(segment);
        track.OutputRead = true;
        _incoming[segment] = null;
        await CallWorkerAsync(track, worker => worker.ReleaseAsync());
        if (_state == JobState.Completed && _tracks.All(t => t.OutputRead))
        {
            StopMonitor();
        }
        else if (_state == JobState.Running)
        {
            await AdmitAsync();
        }
    }

    public Task ReceiveStateBlockAsync(StateBlock block)
    {
        SegmentTrack track = Track(block.Segment);
        if (block.Attempt != track.Attempt || _state != JobState.Running)
        {
            return Task.CompletedTask;
        }

        _bytesMoved += block.Data.Length;
        RetentionTelemetry.StateBytesMoved.Add(block.Data.Length);
        int units = _shape!.Batch * _shape.Heads;
        if (block.Role == StateRole.Summary)
        {
            HeadState[] summary = _summaries[block.Segment] ??= StateTransfer.Zeros(units, _expandedDim, _shape.ValueDim);
            StateTransfer.Apply(block, summary);
        }
        else if (block.Role == StateRole.Final)
        {
            _final ??= StateTransfer.Zeros(units, _expandedDim, _shape.ValueDim);
            StateTransfer.Apply(block, _final);
        }

        return Task.CompletedTask;
    }

    public async Task SummaryCompletedAsync(int segment, int attempt, double[] logDecays)
    {
        SegmentTrack track = Track(segment);
        if (attempt != track.Attempt || _state != JobState.Running || track.Stage != SegmentStage.Phase1)
        {
            return;
        }

        _summaries[segment] ??= StateTransfer.Zeros(logDecays.Length, _expandedDim, _shape!.ValueDim);
        track.SummaryLogDecays = logDecays;
        track.Stage = SegmentStage.ReadyForPhase3;
        await FoldAndStartAsync();
    }

    public async Task SegmentCompletedAsync(int segment, int attempt)
    {
        SegmentTrack track = Track(segment);
        if (attempt != track.Attempt || _state != JobState.Running || track.Stage != SegmentStage.Phase3)
        {
            return;
        }

        track.Stage = SegmentStage.Done;
        track.TokenHeadsDone = SegmentTokenHeads(segment);
        if (!StreamsOutput)
        {
            _incoming[segment] = null;
        }

        if (_tracks.All(t => t.Stage == SegmentStage.Done))
        {
            Complete();
            if (!StreamsOutput)
            {
                await ReleaseWorkersAsync();
                StopMonitor();
            }
        }
        else
        {
            await AdmitAsync();
        }
    }

    // Starts segments in order while fewer than the window are unfinished. A segment is finished when
    // its output is written, or read by the client when output is streamed.
    private async Task AdmitAsync()
    {
        int window = Math.Max(1, _options.ActiveSegmentsPerSilo) * Math.Max(1, _plan!.SiloCount);
        int firstUnfinished = Array.FindIndex(_tracks, t => t.Stage != SegmentStage.Done || (StreamsOutput && !t.OutputRead));
        int limit = firstUnfinished < 0 ? _tracks.Length : Math.Min(_tracks.Length, firstUnfinished + window);
        while (_state == JobState.Running && _admitted < limit)
        {
            SegmentTrack track = _tracks[_admitted++];
            track.Admitted = true;
            if (_spec!.Input == InputKind.Files)
            {
                track.InputsReady = true;
            }

            // Streamed segments now appear in SegmentsNeedingInput, or start at once if their inputs came early.
            if (track.InputsReady)
            {
                await ResumeAsync(track);
            }
        }
    }

    public async Task SegmentFailedAsync(int segment, int attempt, string error, bool badInput)
    {
        SegmentTrack track = Track(segment);
        if (attempt != track.Attempt || _state != JobState.Running)
        {
            return;
        }

        if (badInput || track.Attempt + 1 >= _options.MaxAttempts)
        {
            await FailAsync(badInput ? error : $"Segment {segment} failed {track.Attempt + 1} times; last error: {error}");
            return;
        }

        LogRestart(JobId, segment, error);
        await RestartAsync(track, workerLostInputs: false);
    }

    private async Task StartSegmentAsync(SegmentTrack track)
    {
        if (track.Segment < _plan!.SegmentCount - 1)
        {
            track.Stage = SegmentStage.Phase1;
            _summaries[track.Segment] = null;
            await CallWorkerAsync(track, worker => worker.StartPhase1Async(track.Attempt));
        }
        else
        {
            track.Stage = SegmentStage.ReadyForPhase3;
            await FoldAndStartAsync();
        }
    }

    // Folds finished summaries in segment order, then starts phase 3 wherever the incoming state is known.
    private async Task FoldAndStartAsync()
    {
        while (_folded < _plan!.SegmentCount - 1 && _tracks[_folded].SummaryLogDecays is double[] logDecays && _incoming[_folded] is HeadState[] before)
        {
            HeadState[] summary = _summaries[_folded]!;
            var next = new HeadState[summary.Length];
            for (int unit = 0; unit < summary.Length; unit++)
            {
                next[unit] = new SegmentSummary(logDecays[unit], summary[unit]).Apply(before[unit]);
            }

            _incoming[_folded + 1] = next;
            _summaries[_folded] = null;
            _folded++;
        }

        foreach (SegmentTrack track in _tracks)
        {
            if (track.Stage == SegmentStage.ReadyForPhase3 && _incoming[track.Segment] is not null)
            {
                await StartPhase3Async(track);
            }
        }
    }

    private async Task StartPhase3Async(SegmentTrack track)
    {
        track.Stage = SegmentStage.Phase3;
        track.TokenHeadsDone = 0;
        HeadState[] incoming = _incoming[track.Segment]!;
        bool last = track.Segment == _plan!.SegmentCount - 1;
        if (last)
        {
            _final = null;
        }

        await CallWorkerAsync(track, async worker =>
        {
            if (incoming.Any(h => !h.IsZero))
            {
                foreach (StateBlock block in StateTransfer.Split(StateRole.Incoming, track.Segment, track.Attempt, incoming))
                {
                    await worker.ReceiveStateBlockAsync(block);
                    _bytesMoved += block.Data.Length;
                    RetentionTelemetry.StateBytesMoved.Add(block.Data.Length);
                }
            }

            await worker.StartPhase3Async(track.Attempt, sendFinalState: last && _spec!.ReturnFinalState);
        });
    }

    // A worker whose silo is dying may reject calls; the monitor finds it idle later and restarts the segment.
    private async Task CallWorkerAsync(SegmentTrack track, Func<ISegmentWorkerGrain, Task> call)
    {
        try
        {
            await call(Worker(track.Segment));
        }
        catch (Exception error) when (error is OrleansException or TimeoutException)
        {
            LogWorkerCallFailed(JobId, track.Segment, track.Stage.ToString(), error.Message);
        }
    }

    private async Task RestartAsync(SegmentTrack track, bool workerLostInputs)
    {
        _restarts++;
        track.Attempt++;
        track.TokenHeadsDone = 0;
        await CallWorkerAsync(track, worker => worker.AssignAsync(Assignment(track)));
        if (_spec!.Input == InputKind.Streamed && workerLostInputs)
        {
            // The client sees the segment in SegmentsNeedingInput and uploads it again.
            track.InputsReady = false;
            track.Stage = SegmentStage.AwaitingInput;
            return;
        }

        await ResumeAsync(track);
    }

    // Re-runs what a fresh worker needs: phase 1 if its summary is not folded yet, else phase 3.
    private async Task ResumeAsync(SegmentTrack track)
    {
        bool summaryNeeded = track.Segment < _plan!.SegmentCount - 1 && track.Segment >= _folded && track.SummaryLogDecays is null;
        if (summaryNeeded)
        {
            await StartSegmentAsync(track);
        }
        else
        {
            track.Stage = SegmentStage.ReadyForPhase3;
            await FoldAndStartAsync();
        }
    }

    private async Task MonitorAsync(CancellationToken cancellationToken)
    {
        if (_spec is null || _state is JobState.Failed or JobState.Cancelled)
        {
            StopMonitor();
            return;
        }

        foreach (SegmentTrack track in _tracks)
        {
            bool watched = track.Stage is SegmentStage.Phase1 or SegmentStage.Phase3
                || (track.Stage == SegmentStage.Done && StreamsOutput && !track.OutputRead);
            if (!watched || _state is JobState.Failed or JobState.Cancelled)
            {
                continue;
            }

            WorkerStatus status;
            try
            {
                status = await Worker(track.Segment).GetStatusAsync().WaitAsync(TimeSpan.FromSeconds(10), cancellationToken);
            }
            catch (Exception error) when (error is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                // Calls to a dead silo fail until membership removes it; the next tick reaches a new activation.
                LogMonitorCallFailed(JobId, track.Segment, error.Message);
                continue;
            }

            bool lost = status.JobId != JobId || status.Attempt != track.Attempt || status.Phase == WorkerPhase.Idle;
            if (lost)
            {
                LogWorkerLost(JobId, track.Segment, track.Stage.ToString(), status.Silo ?? "unknown");
                if (track.Stage == SegmentStage.Done)
                {
                    track.Stage = SegmentStage.ReadyForPhase3;
                }

                await RestartAsync(track, workerLostInputs: !status.HasInputs || status.JobId != JobId);
                continue;
            }

            if (status.Phase == WorkerPhase.Failed && track.Stage is SegmentStage.Phase1 or SegmentStage.Phase3)
            {
                // The worker's own report may have been lost; a report that does arrive later names an old attempt and is ignored.
                await SegmentFailedAsync(track.Segment, track.Attempt, status.Error ?? "the worker reported no error message", status.BadInput);
                continue;
            }

            if (track.Stage == SegmentStage.Phase3)
            {
                track.TokenHeadsDone = status.TokenHeadsDone;
            }
        }
    }

    private void Complete()
    {
        _commitOutput?.Invoke();
        _commitOutput = null;
        _pendingOutput = null;
        RetentionTelemetry.RecordJobStopped(_state, failed: false);
        _state = JobState.Completed;
        LogCompleted(JobId, _bytesMoved, _restarts);
    }

    private async Task FailAsync(string error)
    {
        RetentionTelemetry.RecordJobStopped(_state, failed: true);
        _state = JobState.Failed;
        _error = error;
        LogFailed(JobId, error);
        await StopAsync();
    }

    private async Task StopAsync()
    {
        StopMonitor();
        await ReleaseWorkersAsync();
        _pendingOutput?.Dispose();
        _pendingOutput = null;
        _commitOutput = null;
        _incoming = new HeadState[]?[_incoming.Length];
        _summaries = new HeadState[]?[_summaries.Length];
    }

    private async Task ReleaseWorkersAsync()
    {
        try
        {
            await Task.WhenAll(_tracks.Select(t => Worker(t.Segment).ReleaseAsync()));
        }
        catch (Exception error)
        {
            // A worker on a dead silo has nothing left to free.
            LogReleaseFailed(JobId, error.Message);
        }
    }

    private void StopMonitor()
    {
        _monitor?.Dispose();
        _monitor = null;
    }

    private SegmentTrack Track(int segment) =>
        segment >= 0 && segment < _tracks.Length ? _tracks[segment] : throw new ArgumentOutOfRangeException(nameof(segment), segment, $"Job {JobId} has {_tracks.Length} segments.");

    private ISegmentWorkerGrain Worker(int segment) => GrainFactory.GetGrain<ISegmentWorkerGrain>($"{JobId:N}/{segment}");

    private SegmentAssignment Assignment(SegmentTrack track) =>
        new(JobId, _spec! with { Shape = _shape!, InitialState = null }, _plan!, track.Segment, track.Attempt, _outputWritePath);

    private long SegmentTokenHeads(int segment) =>
        (long)(_plan!.SegmentEnd(segment, _shape!.Time) - _plan.SegmentStart(segment)) * _shape.QueryHeads * _shape.Batch;
}
