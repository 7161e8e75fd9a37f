using System.Collections.Concurrent;
using Microsoft.Extensions.Options;

namespace PowerRetention.FrontDoor.Jobs;

/// <summary>
/// The front door's jobs: admits new ones up to <see cref="FrontDoorOptions.MaxRunningJobs"/>, runs each
/// in the background, keeps finished ones for <see cref="FrontDoorOptions.ResultTimeToLive"/> (at most
/// <see cref="FrontDoorOptions.MaxFinishedJobs"/> of them), and deletes their files when it drops them.
/// </summary>
internal sealed partial class JobRegistry : BackgroundService
{
    private readonly ConcurrentDictionary<Guid, FrontDoorJob> _jobs = new();
    private readonly Lock _admission = new();
    private readonly FrontDoorOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<JobRegistry> _logger;
    private readonly bool _ownsWorkDirectory;

    public JobRegistry(IOptions<FrontDoorOptions> options, TimeProvider time, ILogger<JobRegistry> logger)
    {
        _options = options.Value;
        _time = time;
        _logger = logger;
        _ownsWorkDirectory = string.IsNullOrWhiteSpace(_options.WorkDirectory);
        WorkDirectory = _ownsWorkDirectory
            ? Path.Combine(Path.GetTempPath(), $"powerret-frontdoor-{Environment.ProcessId}-{Guid.NewGuid():N}")
            : Path.GetFullPath(_options.WorkDirectory!);
        Directory.CreateDirectory(WorkDirectory);
    }

    /// <summary>Folder of uploaded inputs and of the outputs and states the front door wrote.</summary>
    public string WorkDirectory { get; }

    public DateTimeOffset Now => _time.GetUtcNow();

    /// <summary>Returns the path of one of a job's files in <see cref="WorkDirectory"/>; every such file is deleted with the job.</summary>
    public string PathFor(Guid id, string suffix) => Path.Combine(WorkDirectory, $"{id:N}{suffix}");

    public int RunningCount => _jobs.Values.Count(job => !job.IsFinished);

    public FrontDoorJob? Find(Guid id) => _jobs.TryGetValue(id, out FrontDoorJob? job) ? job : null;

    /// <summary>Adds a job unless <see cref="FrontDoorOptions.MaxRunningJobs"/> jobs are running.</summary>
    public bool TryAdd(FrontDoorJob job)
    {
        lock (_admission)
        {
            int running = RunningCount;
            if (running >= _options.MaxRunningJobs)
            {
                LogRejectedBusy(job.Id, running);
                return false;
            }

            _jobs[job.Id] = job;
            return true;
        }
    }

    /// <summary>
    /// Runs <paramref name="work"/> as the job's background task and records how it ended;
    /// <paramref name="cleanup"/> runs afterwards whatever the outcome.
    /// </summary>
    public void Run(FrontDoorJob job, Func<CancellationToken, Task> work, Action cleanup)
    {
        job.Completion = Task.Run(async () =>
        {
            try
            {
                await work(job.Cancellation.Token);
                job.Complete(Now);
                LogCompleted(job.Id, job.TokenHeadsTotal, (Now - job.CreatedAt).TotalMilliseconds);
            }
            catch (OperationCanceledException) when (job.Cancellation.IsCancellationRequested)
            {
                job.Cancelled(Now);
                LogCancelled(job.Id);
            }
            catch (Exception error)
            {
                job.Fail(error, Now);
                LogFailed(error, job.Id);
            }
            finally
            {
                try
                {
                    cleanup();
                }
                catch (Exception error) when (error is IOException or UnauthorizedAccessException)
                {
                    LogCleanupFailed(error, job.Id);
                }

                DropOverflow();
            }
        });
    }

    /// <summary>Requests cancellation of a running job; returns false when it is not running.</summary>
    public bool Cancel(FrontDoorJob job)
    {
        if (job.IsFinished)
        {
            return false;
        }

        job.Cancellation.Cancel();
        return true;
    }

    /// <summary>Drops a finished job and deletes its files; returns false when it is still running.</summary>
    public bool Remove(FrontDoorJob job)
    {
        if (!job.IsFinished || !_jobs.TryRemove(job.Id, out _))
        {
            return false;
        }

        DeleteFiles(job.Id);
        return true;
    }

    /// <summary>Drops finished jobs older than the time to live, until the host stops.</summary>
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        TimeSpan period = TimeSpan.FromTicks(Math.Clamp(_options.ResultTimeToLive.Ticks / 2, TimeSpan.TicksPerSecond, TimeSpan.TicksPerMinute));
        using var timer = new PeriodicTimer(period, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                DropExpired();
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // The host is stopping.
        }
    }

    /// <summary>Cancels running jobs, waits for them within the host's shutdown time, and deletes the work folder it created.</summary>
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        FrontDoorJob[] running = [.. _jobs.Values.Where(job => !job.IsFinished)];
        foreach (FrontDoorJob job in running)
        {
            job.Cancellation.Cancel();
        }

        try
        {
            await Task.WhenAll(running.Select(job => job.Completion)).WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            LogStopTimedOut(running.Count(job => !job.IsFinished));
        }

        if (_ownsWorkDirectory)
        {
            try
            {
                Directory.Delete(WorkDirectory, recursive: true);
            }
            catch (Exception error) when (error is IOException or UnauthorizedAccessException)
            {
                LogWorkDirectoryNotDeleted(error, WorkDirectory);
            }
        }
    }

    internal void DropExpired()
    {
        DateTimeOffset oldest = Now - _options.ResultTimeToLive;
        foreach (FrontDoorJob job in _jobs.Values)
        {
            if (job.Snapshot().FinishedAt is DateTimeOffset finished && finished <= oldest && Remove(job))
            {
                LogExpired(job.Id);
            }
        }
    }

    private void DropOverflow()
    {
        FrontDoorJob[] finished = [.. _jobs.Values.Where(job => job.IsFinished).OrderBy(job => job.Snapshot().FinishedAt)];
        for (int i = 0; i < finished.Length - _options.MaxFinishedJobs; i++)
        {
            if (Remove(finished[i]))
            {
                LogExpired(finished[i].Id);
            }
        }
    }

    private void DeleteFiles(Guid id)
    {
        try
        {
            foreach (string path in Directory.EnumerateFiles(WorkDirectory, $"{id:N}*"))
            {
                File.Delete(path);
            }
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException)
        {
            LogCleanupFailed(error, id);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId} completed: {TokenHeads} token-heads in {Milliseconds} ms")]
    private partial void LogCompleted(Guid jobId, long tokenHeads, double milliseconds);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId} cancelled")]
    private partial void LogCancelled(Guid jobId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId} failed")]
    private partial void LogFailed(Exception error, Guid jobId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId} rejected: {Running} jobs are running, the configured maximum")]
    private partial void LogRejectedBusy(Guid jobId, int running);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId} dropped with its files")]
    private partial void LogExpired(Guid jobId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: could not delete its files")]
    private partial void LogCleanupFailed(Exception error, Guid jobId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Stopping with {Running} jobs still running after cancellation")]
    private partial void LogStopTimedOut(int running);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not delete the work folder {WorkDirectory}")]
    private partial void LogWorkDirectoryNotDeleted(Exception error, string workDirectory);
}
