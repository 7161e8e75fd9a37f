using PowerRetention.Client;

namespace PowerRetention.FrontDoor.Jobs;

/// <summary>State of a job as the front door reports it.</summary>
public enum FrontDoorJobState
{
    /// <summary>Accepted; the cluster is computing it.</summary>
    Running,

    /// <summary>Done; the output (and the final state, when requested) can be downloaded.</summary>
    Completed,

    /// <summary>The job could not finish, and the status contains the reason.</summary>
    Failed,

    /// <summary>Cancelled through <c>DELETE /jobs/{id}</c> or because the front door stopped.</summary>
    Cancelled,
}

/// <summary>
/// One job the front door started: its background task, progress and, once finished, where its
/// output and final state are. Progress fields are written by the job's task and read by requests.
/// </summary>
internal sealed class FrontDoorJob : IProgress<JobProgress>
{
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _lock = new();
    private long _tokenHeadsDone;
    private long _tokenHeadsTotal;
    private FrontDoorJobState _state = FrontDoorJobState.Running;
    private string? _error;
    private DateTimeOffset? _finishedAt;

    public FrontDoorJob(Guid id, string kind, bool finalStateRequested, string? outputPath, string? statePath, DateTimeOffset createdAt)
    {
        Id = id;
        Kind = kind;
        FinalStateRequested = finalStateRequested;
        OutputPath = outputPath;
        StatePath = statePath;
        CreatedAt = createdAt;
    }

    public Guid Id { get; }

    /// <summary>"upload" for <c>POST /jobs</c>, "files" for <c>POST /jobs/files</c>.</summary>
    public string Kind { get; }

    public bool FinalStateRequested { get; }

    /// <summary>Where the output is once the job completed: a file of the front door, or the path the silos wrote.</summary>
    public string? OutputPath { get; }

    /// <summary>Where the final state file is once the job completed, when it was requested.</summary>
    public string? StatePath { get; }

    public DateTimeOffset CreatedAt { get; }

    public CancellationTokenSource Cancellation { get; } = new();

    /// <summary>The job's background task; it never faults, because failures are recorded in the job.</summary>
    public Task Completion { get; set; } = Task.CompletedTask;

    /// <summary>Completes when the cluster reported the job's first progress, that is once it accepted the job.</summary>
    public Task Started => _started.Task;

    /// <summary>The exception that ended the job before the cluster accepted it, if any.</summary>
    public Exception? StartFailure { get; private set; }

    public FrontDoorJobState State => Snapshot().State;

    public bool IsFinished => State != FrontDoorJobState.Running;

    /// <summary>Returns the state, the error of a failed or cancelled job and when it finished, read together.</summary>
    public (FrontDoorJobState State, string? Error, DateTimeOffset? FinishedAt) Snapshot()
    {
        lock (_lock)
        {
            return (_state, _error, _finishedAt);
        }
    }

    public long TokenHeadsDone => Interlocked.Read(ref _tokenHeadsDone);

    public long TokenHeadsTotal => Interlocked.Read(ref _tokenHeadsTotal);

    public void Report(JobProgress value)
    {
        Interlocked.Exchange(ref _tokenHeadsTotal, value.TokenHeadsTotal);
        Interlocked.Exchange(ref _tokenHeadsDone, value.TokenHeadsDone);
        _started.TrySetResult();
    }

    public void Complete(DateTimeOffset now)
    {
        Interlocked.Exchange(ref _tokenHeadsDone, TokenHeadsTotal);
        Finish(FrontDoorJobState.Completed, null, now);
    }

    public void Fail(Exception error, DateTimeOffset now)
    {
        if (!Started.IsCompleted)
        {
            StartFailure = error;
        }

        Finish(FrontDoorJobState.Failed, error.Message, now);
    }

    public void Cancelled(DateTimeOffset now) => Finish(FrontDoorJobState.Cancelled, "The job was cancelled.", now);

    private void Finish(FrontDoorJobState state, string? error, DateTimeOffset now)
    {
        lock (_lock)
        {
            _state = state;
            _error = error;
            _finishedAt = now;
        }

        _started.TrySetResult();
    }
}
