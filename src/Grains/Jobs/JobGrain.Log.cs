using Microsoft.Extensions.Logging;

namespace PowerRetention.Grains;

internal sealed partial class JobGrain
{
    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId} started: {Tokens} tokens in {Segments} segments of {SegmentTokens} tokens over {Silos} silos")]
    private partial void LogStarted(Guid jobId, int tokens, int segments, int segmentTokens, int silos);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId} rejected: {Reason}")]
    private partial void LogRejected(Guid jobId, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId} completed: {Bytes} bytes of state moved, {Restarts} segment restarts")]
    private partial void LogCompleted(Guid jobId, long bytes, int restarts);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId} failed: {Error}")]
    private partial void LogFailed(Guid jobId, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId} cancelled")]
    private partial void LogCancelled(Guid jobId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId} segment {Segment} restarts after an error: {Error}")]
    private partial void LogRestart(Guid jobId, int segment, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId} segment {Segment}: worker lost its work in stage {Stage} (now on {Silo}); restarting")]
    private partial void LogWorkerLost(Guid jobId, int segment, string stage, string silo);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Job {JobId} segment {Segment}: status call failed: {Error}")]
    private partial void LogMonitorCallFailed(Guid jobId, int segment, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId} segment {Segment}: call to the worker in stage {Stage} failed, the monitor retries: {Error}")]
    private partial void LogWorkerCallFailed(Guid jobId, int segment, string stage, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: releasing workers failed: {Error}")]
    private partial void LogReleaseFailed(Guid jobId, string error);
}
