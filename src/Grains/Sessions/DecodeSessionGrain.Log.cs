using Microsoft.Extensions.Logging;

namespace PowerRetention.Grains;

internal sealed partial class DecodeSessionGrain
{
    [LoggerMessage(Level = LogLevel.Information, Message = "Decode session {SessionId} started from {Origin}: b={Batch}, h={Heads}, hq={QueryHeads}, d={KeyDim}, e={ValueDim}, p={Degree}, {StateBytes} bytes of state")]
    private partial void LogStarted(string sessionId, string origin, int batch, int heads, int queryHeads, int keyDim, int valueDim, int degree, long stateBytes);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Decode session {SessionId} was not started: {Reason}")]
    private partial void LogStartRejected(string sessionId, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Decode session {SessionId} loaded from storage on {Silo} at position {Position} with {CacheLength} cached tokens")]
    private partial void LogLoaded(string sessionId, long position, int cacheLength, string silo);

    [LoggerMessage(Level = LogLevel.Error, Message = "Decode session {SessionId} could not be loaded from storage")]
    private partial void LogLoadFailed(Exception error, string sessionId);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Decode session {SessionId} step {StepId}: {Tokens} tokens, now at position {Position} (cache folded: {Folded}) in {Milliseconds:F3} ms")]
    private partial void LogStepApplied(string sessionId, Guid stepId, int tokens, long position, bool folded, double milliseconds);

    [LoggerMessage(Level = LogLevel.Information, Message = "Decode session {SessionId} step {StepId} was retried; returning its stored output at position {Position}")]
    private partial void LogStepRepeated(string sessionId, Guid stepId, long position);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Decode session {SessionId} step {StepId} failed and was not applied; the session stays at position {Position}")]
    private partial void LogStepFailed(Exception error, string sessionId, Guid stepId, long position);

    [LoggerMessage(Level = LogLevel.Error, Message = "Decode session {SessionId}: rebuilding the state after a failed step failed; the session is deactivated and reloads from storage")]
    private partial void LogRollBackFailed(Exception error, string sessionId);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Decode session {SessionId} exported at position {Position}: {Bytes} bytes")]
    private partial void LogExported(string sessionId, long position, int bytes);

    [LoggerMessage(Level = LogLevel.Information, Message = "Decode session {SessionId} dropped at position {Position}")]
    private partial void LogDropped(string sessionId, long position);
}
