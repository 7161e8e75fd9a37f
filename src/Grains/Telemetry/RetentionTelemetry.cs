using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace PowerRetention.Grains;

/// <summary>
/// PowerRetention's meter and activity source, both named <see cref="Name"/>, and the names of their
/// instruments and activities. Register the name with OpenTelemetry (<c>AddMeter</c>, <c>AddSource</c>)
/// to export them.
/// </summary>
public static class RetentionTelemetry
{
    /// <summary>Name of the meter and of the activity source.</summary>
    public const string Name = "PowerRetention";

    /// <summary>Counter of tokens whose outputs a segment worker computed (phase 3), batch entries counted separately.</summary>
    public const string TokensProcessedName = "powerret.tokens.processed";

    /// <summary>Counter of output rows computed: tokens x query heads x batch entries.</summary>
    public const string TokenHeadsProcessedName = "powerret.token_heads.processed";

    /// <summary>Histogram of the duration of one segment phase in seconds, tagged <see cref="PhaseTag"/>.</summary>
    public const string PhaseDurationName = "powerret.segment.phase.duration";

    /// <summary>Counter of state bytes the coordinator received from or sent to segment workers.</summary>
    public const string StateBytesMovedName = "powerret.state.bytes_moved";

    /// <summary>Gauge of work items waiting for a compute-device thread, summed over the devices of the process.</summary>
    public const string ComputeQueueLengthName = "powerret.compute.queue_length";

    /// <summary>Gauge of work items running on compute-device threads, summed over the devices of the process.</summary>
    public const string ComputeRunningName = "powerret.compute.running";

    /// <summary>Up-down counter of jobs whose coordinator is in the running state.</summary>
    public const string JobsRunningName = "powerret.jobs.running";

    /// <summary>Counter of jobs that failed after they started.</summary>
    public const string JobsFailedName = "powerret.jobs.failed";

    /// <summary>Tag of <see cref="PhaseDurationName"/> and of phase activities: "summary" (phase 1) or "output" (phase 3).</summary>
    public const string PhaseTag = "powerret.phase";

    /// <summary>Name of the client's activity that spans one job.</summary>
    public const string JobActivityName = "powerret.job";

    /// <summary>Name of a segment worker's activity that spans one phase of one attempt.</summary>
    public const string PhaseActivityName = "powerret.segment.phase";

    /// <summary>Value of <see cref="PhaseTag"/> for phase 1, the segment's summary.</summary>
    public const string SummaryPhase = "summary";

    /// <summary>Value of <see cref="PhaseTag"/> for phase 3, the segment's outputs.</summary>
    public const string OutputPhase = "output";

    private static readonly ConcurrentDictionary<ComputeDevice, bool> s_devices = new();

    /// <summary>The activity source of jobs and segment phases.</summary>
    public static ActivitySource ActivitySource { get; } = new(Name);

    /// <summary>The meter of every instrument named here.</summary>
    public static Meter Meter { get; } = new(Name);

    internal static Counter<long> TokensProcessed { get; } =
        Meter.CreateCounter<long>(TokensProcessedName, "{token}", "Tokens whose outputs were computed");

    internal static Counter<long> TokenHeadsProcessed { get; } =
        Meter.CreateCounter<long>(TokenHeadsProcessedName, "{row}", "Output rows computed (token x query head x batch entry)");

    internal static Histogram<double> PhaseDuration { get; } =
        Meter.CreateHistogram<double>(PhaseDurationName, "s", "Duration of one segment phase");

    internal static Counter<long> StateBytesMoved { get; } =
        Meter.CreateCounter<long>(StateBytesMovedName, "By", "State bytes moved between the coordinator and segment workers");

    internal static UpDownCounter<long> JobsRunning { get; } =
        Meter.CreateUpDownCounter<long>(JobsRunningName, "{job}", "Jobs running");

    internal static Counter<long> JobsFailed { get; } =
        Meter.CreateCounter<long>(JobsFailedName, "{job}", "Jobs that failed after they started");

    static RetentionTelemetry()
    {
        Meter.CreateObservableGauge(ComputeQueueLengthName, () => s_devices.Keys.Sum(device => (long)device.QueueLength), "{item}", "Work items waiting for a compute-device thread");
        Meter.CreateObservableGauge(ComputeRunningName, () => s_devices.Keys.Sum(device => (long)device.Running), "{item}", "Work items running on compute-device threads");
    }

    /// <summary>Starts the client's activity of one job, or returns null when no listener samples it. File jobs pass no shape because only the coordinator reads the files.</summary>
    internal static Activity? StartJob(Guid jobId, InputKind input, JobShape? shape)
    {
        Activity? activity = ActivitySource.StartActivity(JobActivityName, ActivityKind.Client);
        if (activity is not null)
        {
            activity.SetTag("powerret.job.id", jobId);
            activity.SetTag("powerret.job.input", input == InputKind.Files ? "files" : "streamed");
            if (shape is not null)
            {
                activity.SetTag("powerret.job.tokens", shape.Time);
                activity.SetTag("powerret.job.batch", shape.Batch);
                activity.SetTag("powerret.job.query_heads", shape.QueryHeads);
            }
        }

        return activity;
    }

    /// <summary>Starts a segment worker's activity of one phase, or returns null when no listener samples it.</summary>
    internal static Activity? StartPhase(SegmentAssignment assignment, string phase)
    {
        Activity? activity = ActivitySource.StartActivity(PhaseActivityName);
        if (activity is not null)
        {
            activity.DisplayName = $"segment {assignment.Segment} {phase}";
            activity.SetTag("powerret.job.id", assignment.JobId);
            activity.SetTag("powerret.segment", assignment.Segment);
            activity.SetTag("powerret.attempt", assignment.Attempt);
            activity.SetTag(PhaseTag, phase);
        }

        return activity;
    }

    /// <summary>Marks <paramref name="activity"/> failed and returns false, so that it can sit in an exception filter.</summary>
    internal static bool MarkFailed(Activity? activity, Exception error)
    {
        activity?.SetStatus(ActivityStatusCode.Error, error.Message);
        activity?.AddException(error);
        return false;
    }

    /// <summary>Records one finished phase: its duration and, for phase 3, the tokens and rows it computed.</summary>
    internal static void RecordPhase(string phase, TimeSpan elapsed, long tokens, long tokenHeads)
    {
        PhaseDuration.Record(elapsed.TotalSeconds, new KeyValuePair<string, object?>(PhaseTag, phase));
        if (tokens > 0)
        {
            TokensProcessed.Add(tokens);
            TokenHeadsProcessed.Add(tokenHeads);
        }
    }

    /// <summary>Records that a job left the running state, as failed or not.</summary>
    internal static void RecordJobStopped(JobState previous, bool failed)
    {
        if (previous == JobState.Running)
        {
            JobsRunning.Add(-1);
        }

        if (failed)
        {
            JobsFailed.Add(1);
        }
    }

    internal static void AddDevice(ComputeDevice device) => s_devices[device] = true;

    internal static void RemoveDevice(ComputeDevice device) => s_devices.TryRemove(device, out _);
}
