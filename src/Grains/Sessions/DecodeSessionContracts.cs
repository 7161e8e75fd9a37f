namespace PowerRetention.Grains;

/// <summary>
/// Sizes and options of a decode session. A session started from a state file or a job takes b, h,
/// d, e and p from that state, so any of them given here must match it.
/// </summary>
[GenerateSerializer, Immutable, Alias("powerret.DecodeSessionSpec")]
public sealed record DecodeSessionSpec
{
    /// <summary>Cache length used when none is given.</summary>
    /// <remarks>
    /// Smaller than the kernels' default because every step persists the cache: 64 tokens keep each
    /// write small, while the state itself is written only when the cache is folded into it.
    /// </remarks>
    public const int DefaultSwitchOverSeqLen = 64;

    /// <summary>Batch size b; null means 1, or the source state's.</summary>
    [Id(0)]
    public int? Batch { get; init; }

    /// <summary>Key/value heads h; required for an empty session.</summary>
    [Id(1)]
    public int? Heads { get; init; }

    /// <summary>Query heads hq, a multiple of h; null means h.</summary>
    [Id(2)]
    public int? QueryHeads { get; init; }

    /// <summary>Key dimension d; required for an empty session.</summary>
    [Id(3)]
    public int? KeyDim { get; init; }

    /// <summary>Value dimension e; null means d, or the source state's.</summary>
    [Id(4)]
    public int? ValueDim { get; init; }

    /// <summary>Degree p; null means 2, or the source state's.</summary>
    [Id(5)]
    public int? Degree { get; init; }

    /// <summary>Scale applied to q . k; null means 1/sqrt(d).</summary>
    [Id(6)]
    public float? Scale { get; init; }

    /// <summary>Most tokens kept in the cache before it is folded into the state.</summary>
    [Id(7)]
    public int SwitchOverSeqLen { get; init; } = DefaultSwitchOverSeqLen;
}

/// <summary>
/// One decode step: n new tokens as Q (b, n, hq, d), K (b, n, h, d), V (b, n, h, e) in one data type
/// and optional log-gates (b, n, h) in float32.
/// </summary>
/// <param name="StepId">
/// Chosen by the client and reused when it retries the call: a step whose id equals the session's last
/// step returns that step's stored output instead of being applied again.
/// </param>
/// <param name="Q">Queries.</param>
/// <param name="K">Keys.</param>
/// <param name="V">Values.</param>
/// <param name="LogG">Log-gates, every value &lt;= 0, or null without gating.</param>
[GenerateSerializer, Immutable, Alias("powerret.DecodeStepRequest")]
public sealed record DecodeStepRequest(
    [property: Id(0)] Guid StepId,
    [property: Id(1)] RawTensor Q,
    [property: Id(2)] RawTensor K,
    [property: Id(3)] RawTensor V,
    [property: Id(4)] RawTensor? LogG);

/// <summary>The outputs of one decode step.</summary>
/// <param name="StepId">The request's step id.</param>
/// <param name="Position">Tokens in the session after this step.</param>
/// <param name="Output">Y, (b, n, hq, e), in the data type of Q.</param>
/// <param name="Repeated">True when the step had already been applied and its stored output was returned.</param>
[GenerateSerializer, Immutable, Alias("powerret.DecodeStepResult")]
public sealed record DecodeStepResult(
    [property: Id(0)] Guid StepId,
    [property: Id(1)] long Position,
    [property: Id(2)] RawTensor Output,
    [property: Id(3)] bool Repeated);

/// <summary>A snapshot of a decode session.</summary>
/// <param name="SessionId">The session's key.</param>
/// <param name="Batch">Batch size b.</param>
/// <param name="Heads">Key/value heads h.</param>
/// <param name="QueryHeads">Query heads hq.</param>
/// <param name="KeyDim">Key dimension d.</param>
/// <param name="ValueDim">Value dimension e.</param>
/// <param name="Degree">Degree p.</param>
/// <param name="Scale">Scale applied to q . k.</param>
/// <param name="SwitchOverSeqLen">Cache capacity in tokens.</param>
/// <param name="Position">Tokens stepped since the session started, not counting history inside its initial state.</param>
/// <param name="CacheLength">Tokens in the cache, not yet folded into the state.</param>
/// <param name="StateBytes">Size of S and s in bytes, b x h x D x (e + 1) x 4.</param>
/// <param name="Origin">What the session started from: "empty", "state file" or "job {id}".</param>
/// <param name="LastStepId">Id of the last applied step, or null before the first.</param>
/// <param name="Silo">The silo hosting the session now.</param>
/// <param name="ActivationId">Changes whenever the session is loaded again, for example after its silo restarted.</param>
[GenerateSerializer, Immutable, Alias("powerret.DecodeSessionInfo")]
public sealed record DecodeSessionInfo(
    [property: Id(0)] string SessionId,
    [property: Id(1)] int Batch,
    [property: Id(2)] int Heads,
    [property: Id(3)] int QueryHeads,
    [property: Id(4)] int KeyDim,
    [property: Id(5)] int ValueDim,
    [property: Id(6)] int Degree,
    [property: Id(7)] float Scale,
    [property: Id(8)] int SwitchOverSeqLen,
    [property: Id(9)] long Position,
    [property: Id(10)] int CacheLength,
    [property: Id(11)] long StateBytes,
    [property: Id(12)] string Origin,
    [property: Id(13)] Guid? LastStepId,
    [property: Id(14)] string Silo,
    [property: Id(15)] Guid ActivationId);
