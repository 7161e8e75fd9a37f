using Microsoft.Extensions.Logging;
using PowerRetention.Kernels;

namespace PowerRetention.Grains;

/// <summary>
/// Runs one segment of a job. Calls return at once; the computation runs on the silo's compute
/// device and the worker reports to the coordinator when a phase ends. The worker never awaits the
/// coordinator inside a request, so the two non-reentrant grains cannot wait on each other.
/// </summary>
[SpreadPlacement]
internal sealed partial class SegmentWorkerGrain(ComputeDevice device, ILogger<SegmentWorkerGrain> logger) : Grain, ISegmentWorkerGrain
{
    private static readonly string[] s_inputNames = ["q", "k", "v", "log_g"];

    private SegmentAssignment? _assignment;
    private WorkerPhase _phase = WorkerPhase.Idle;
    private Exception? _failure;
    private long _tokenHeadsDone;
    private CancellationTokenSource _cancellation = new();
    private Dictionary<string, byte[][]>? _streamed;
    private HeadState[]? _incoming;
    private Tensor? _output;

    private int Segment => _assignment!.Segment;

    private IJobGrain Coordinator => GrainFactory.GetGrain<IJobGrain>(_assignment!.JobId);

    public Task AssignAsync(SegmentAssignment assignment)
    {
        bool sameJob = _assignment?.JobId == assignment.JobId;
        if (_assignment is not null && _phase == WorkerPhase.Busy)
        {
            // A new attempt replaces a running one.
            _cancellation.Cancel();
            _cancellation = new CancellationTokenSource();
        }

        _assignment = assignment;
        _phase = WorkerPhase.Waiting;
        _tokenHeadsDone = 0;
        _incoming = null;
        _output = null;
        _failure = null;
        if (!sameJob)
        {
            _streamed = null;
        }

        return Task.CompletedTask;
    }

    public Task UploadInputAsync(Guid jobId, InputBlock block)
    {
        if (_assignment is null || _assignment.JobId != jobId)
        {
            throw new InvalidOperationException($"Worker {this.GetPrimaryKeyString()} has no assignment for job {jobId}.");
        }

        JobShape shape = _assignment.Spec.Shape;
        int length = _assignment.Plan.SegmentEnd(Segment, shape.Time) - _assignment.Plan.SegmentStart(Segment);
        _streamed ??= s_inputNames.ToDictionary(name => name, _ => new byte[shape.Batch][]);
        if (!_streamed.TryGetValue(block.Tensor, out byte[][]? perBatch))
        {
            throw new ArgumentException($"Unknown input tensor '{block.Tensor}'; expected q, k, v or log_g.", nameof(block));
        }

        long bytes = SliceBytes(block.Tensor, shape, length);
        if (block.Batch < 0 || block.Batch >= shape.Batch || block.ByteOffset < 0 || block.ByteOffset + block.Data.Length > bytes)
        {
            throw new ArgumentOutOfRangeException(nameof(block), $"Block of {block.Data.Length} bytes at {block.ByteOffset} for {block.Tensor}[batch {block.Batch}] does not fit the segment slice of {bytes} bytes.");
        }

        byte[] slice = perBatch[block.Batch] ??= new byte[bytes];
        block.Data.CopyTo(slice.AsSpan((int)block.ByteOffset));
        return Task.CompletedTask;
    }

    public Task StartPhase1Async(int attempt)
    {
        if (_assignment is null || attempt != _assignment.Attempt)
        {
            return Task.CompletedTask;
        }

        _phase = WorkerPhase.Busy;
        _ = RunPhase1Async(_assignment, _cancellation.Token);
        return Task.CompletedTask;
    }

    public Task ReceiveStateBlockAsync(StateBlock block)
    {
        if (_assignment is null || block.Attempt != _assignment.Attempt)
        {
            return Task.CompletedTask;
        }

        JobShape shape = _assignment.Spec.Shape;
        _incoming ??= StateTransfer.Zeros(shape.Batch * shape.Heads, (int)SymmetricPowerBasis.ExpandedDimOf(shape.KeyDim, _assignment.Spec.Degree), shape.ValueDim);
        StateTransfer.Apply(block, _incoming);
        return Task.CompletedTask;
    }

    public Task StartPhase3Async(int attempt, bool sendFinalState)
    {
        if (_assignment is null || attempt != _assignment.Attempt)
        {
            return Task.CompletedTask;
        }

        _phase = WorkerPhase.Busy;
        _ = RunPhase3Async(_assignment, sendFinalState, _cancellation.Token);
        return Task.CompletedTask;
    }

    public Task<WorkerStatus> GetStatusAsync() => Task.FromResult(new WorkerStatus(
        _assignment?.JobId ?? Guid.Empty,
        _assignment?.Attempt ?? -1,
        _phase,
        Interlocked.Read(ref _tokenHeadsDone),
        _assignment?.Spec.Input != InputKind.Streamed || HasAllInputs(),
        RuntimeIdentity,
        _phase == WorkerPhase.Failed ? _failure?.Message : null,
        _phase == WorkerPhase.Failed && _failure is not null && IsBadInput(_failure)));

    public Task<byte[]> ReadOutputAsync(Guid jobId, long offset, int count)
    {
        if (_assignment?.JobId != jobId || _output is null || _phase != WorkerPhase.Done)
        {
            throw new InvalidOperationException($"Worker {this.GetPrimaryKeyString()} has no finished output for job {jobId}.");
        }

        ReadOnlySpan<byte> bytes = SegmentData.BytesOf(_output);
        if (offset >= bytes.Length)
        {
            return Task.FromResult(Array.Empty<byte>());
        }

        return Task.FromResult(bytes.Slice((int)offset, (int)Math.Min(count, bytes.Length - offset)).ToArray());
    }

    public Task ReleaseAsync()
    {
        _cancellation.Cancel();
        _cancellation = new CancellationTokenSource();
        _assignment = null;
        _phase = WorkerPhase.Idle;
        _streamed = null;
        _incoming = null;
        _output = null;
        _failure = null;
        DeactivateOnIdle();
        return Task.CompletedTask;
    }

    private async Task RunPhase1Async(SegmentAssignment assignment, CancellationToken cancellationToken)
    {
        using var activity = RetentionTelemetry.StartPhase(assignment, RetentionTelemetry.SummaryPhase);
        try
        {
            var timer = System.Diagnostics.Stopwatch.StartNew();
            SegmentSummary[] summaries = await RunOnUnitsAsync(assignment, (data, batch, head, token) =>
                device.Backend.RunSummaryOnly(data.Problem, batch, head, data.Start, data.End, token), openOutput: false, cancellationToken);
            if (!IsCurrent(assignment, cancellationToken))
            {
                return;
            }

            HeadState[] states = summaries.Select(s => s.State).ToArray();
            foreach (StateBlock block in StateTransfer.Split(StateRole.Summary, assignment.Segment, assignment.Attempt, states))
            {
                await Coordinator.ReceiveStateBlockAsync(block);
            }

            _phase = WorkerPhase.Waiting;
            LogPhaseDone(assignment.JobId, assignment.Segment, 1, timer.ElapsedMilliseconds);
            RetentionTelemetry.RecordPhase(RetentionTelemetry.SummaryPhase, timer.Elapsed, tokens: 0, tokenHeads: 0);
            await Coordinator.SummaryCompletedAsync(assignment.Segment, assignment.Attempt, summaries.Select(s => s.LogDecay).ToArray());
        }
        catch (Exception error) when (error is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            RetentionTelemetry.MarkFailed(activity, error);
            await ReportFailureAsync(assignment, error);
        }
        catch (OperationCanceledException)
        {
            LogCancelled(assignment.JobId, assignment.Segment);
        }
    }

    private async Task RunPhase3Async(SegmentAssignment assignment, bool sendFinalState, CancellationToken cancellationToken)
    {
        using var activity = RetentionTelemetry.StartPhase(assignment, RetentionTelemetry.OutputPhase);
        try
        {
            var timer = System.Diagnostics.Stopwatch.StartNew();
            JobShape shape = assignment.Spec.Shape;
            HeadState[] incoming = _incoming ?? StateTransfer.Zeros(shape.Batch * shape.Heads, (int)SymmetricPowerBasis.ExpandedDimOf(shape.KeyDim, assignment.Spec.Degree), shape.ValueDim);
            Tensor? output = null;
            HeadState[] finals = await RunOnUnitsAsync(assignment, (data, batch, head, token) =>
            {
                output = data.Output;
                HeadState state = incoming[(batch * shape.Heads) + head].Clone();
                device.Backend.RunDirect(data.Problem, batch, head, data.Start, data.End, state, data.Output!, sendFinalState, tokens => Interlocked.Add(ref _tokenHeadsDone, (long)tokens * data.Problem.GroupSize), token);
                return state;
            }, openOutput: true, cancellationToken);
            if (!IsCurrent(assignment, cancellationToken))
            {
                return;
            }

            _output = assignment.OutputWritePath is null ? output : null;
            _incoming = null;
            if (sendFinalState)
            {
                foreach (StateBlock block in StateTransfer.Split(StateRole.Final, assignment.Segment, assignment.Attempt, finals))
                {
                    await Coordinator.ReceiveStateBlockAsync(block);
                }
            }

            _phase = WorkerPhase.Done;
            LogPhaseDone(assignment.JobId, assignment.Segment, 3, timer.ElapsedMilliseconds);
            long tokens = (long)(assignment.Plan.SegmentEnd(assignment.Segment, shape.Time) - assignment.Plan.SegmentStart(assignment.Segment)) * shape.Batch;
            RetentionTelemetry.RecordPhase(RetentionTelemetry.OutputPhase, timer.Elapsed, tokens, tokens * shape.QueryHeads);
            await Coordinator.SegmentCompletedAsync(assignment.Segment, assignment.Attempt);
        }
        catch (Exception error) when (error is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            RetentionTelemetry.MarkFailed(activity, error);
            await ReportFailureAsync(assignment, error);
        }
        catch (OperationCanceledException)
        {
            LogCancelled(assignment.JobId, assignment.Segment);
        }
    }

    // Opens the segment's data once, then runs one compute-device item per (batch, head) unit.
    private async Task<T[]> RunOnUnitsAsync<T>(SegmentAssignment assignment, Func<SegmentData, int, int, CancellationToken, T> work, bool openOutput, CancellationToken cancellationToken)
    {
        JobShape shape = assignment.Spec.Shape;
        int start = assignment.Plan.SegmentStart(assignment.Segment);
        int end = assignment.Plan.SegmentEnd(assignment.Segment, shape.Time);
        using SegmentData data = OpenData(assignment, start, end);
        if (openOutput)
        {
            data.OpenOutput(assignment.OutputWritePath, shape);
        }

        await device.RunAsync(token => data.Problem.CheckValues(data.Start, data.End, data.TokenOffset), cancellationToken);
        int units = shape.Batch * shape.Heads;
        Task<T>[] tasks = new Task<T>[units];
        for (int unit = 0; unit < units; unit++)
        {
            int batch = unit / shape.Heads, head = unit % shape.Heads;
            tasks[unit] = device.RunAsync(token => work(data, batch, head, token), cancellationToken);
        }

        return await Task.WhenAll(tasks);
    }

    private SegmentData OpenData(SegmentAssignment assignment, int start, int end)
    {
        JobSpec spec = assignment.Spec;
        if (spec.Input == InputKind.Files)
        {
            return SegmentData.OpenFiles(spec, assignment.Plan.ChunkSize, start, end);
        }

        if (!HasAllInputs())
        {
            throw new InvalidOperationException($"Segment {assignment.Segment} of job {assignment.JobId} has not received all its streamed inputs.");
        }

        JobShape shape = spec.Shape;
        int length = end - start;
        Tensor Slice(string name, int heads, int dim)
        {
            byte[][] perBatch = _streamed![name];
            DataType type = name == "log_g" ? DataType.Float32 : shape.DataType;
            byte[] joined = perBatch.Length == 1 ? perBatch[0] : perBatch.SelectMany(b => b).ToArray();
            return dim == 0
                ? SegmentData.FromBytes(type, joined, [shape.Batch, length, heads])
                : SegmentData.FromBytes(type, joined, [shape.Batch, length, heads, dim]);
        }

        return SegmentData.FromSlices(
            spec,
            assignment.Plan.ChunkSize,
            start,
            length,
            Slice("q", shape.QueryHeads, shape.KeyDim),
            Slice("k", shape.Heads, shape.KeyDim),
            Slice("v", shape.Heads, shape.ValueDim),
            shape.Gated ? Slice("log_g", shape.Heads, 0) : null);
    }

    private bool HasAllInputs()
    {
        if (_assignment is null || _streamed is null)
        {
            return false;
        }

        JobShape shape = _assignment.Spec.Shape;
        IEnumerable<string> needed = shape.Gated ? s_inputNames : s_inputNames[..3];
        return needed.All(name => _streamed[name].All(slice => slice is not null));
    }

    private static long SliceBytes(string tensor, JobShape shape, int length) => tensor switch
    {
        "q" => (long)length * shape.QueryHeads * shape.KeyDim * shape.DataType.SizeInBytes(),
        "k" => (long)length * shape.Heads * shape.KeyDim * shape.DataType.SizeInBytes(),
        "v" => (long)length * shape.Heads * shape.ValueDim * shape.DataType.SizeInBytes(),
        _ => (long)length * shape.Heads * sizeof(float),
    };

    private static bool IsBadInput(Exception error) => error is ArgumentException or IOException or InsufficientMemoryException;

    private bool IsCurrent(SegmentAssignment assignment, CancellationToken cancellationToken) =>
        !cancellationToken.IsCancellationRequested && ReferenceEquals(_assignment, assignment);

    private async Task ReportFailureAsync(SegmentAssignment assignment, Exception error)
    {
        if (!ReferenceEquals(_assignment, assignment))
        {
            return;
        }

        _phase = WorkerPhase.Failed;
        _failure = error;
        bool badInput = IsBadInput(error);
        LogFailed(error, assignment.JobId, assignment.Segment, assignment.Attempt);
        try
        {
            await Coordinator.SegmentFailedAsync(assignment.Segment, assignment.Attempt, error.Message, badInput);
        }
        catch (Exception reportError)
        {
            // The coordinator's monitor reads the Failed phase and the error from GetStatusAsync instead.
            LogReportFailed(reportError, assignment.JobId, assignment.Segment);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId} segment {Segment}: phase {Phase} done in {Milliseconds} ms")]
    private partial void LogPhaseDone(Guid jobId, int segment, int phase, long milliseconds);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId} segment {Segment}: cancelled")]
    private partial void LogCancelled(Guid jobId, int segment);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId} segment {Segment} attempt {Attempt} failed")]
    private partial void LogFailed(Exception error, Guid jobId, int segment, int attempt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId} segment {Segment}: could not report a failure to the coordinator")]
    private partial void LogReportFailed(Exception error, Guid jobId, int segment);
}
