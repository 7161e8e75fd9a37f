namespace PowerRetention.Kernels;

/// <summary>Options of <see cref="Retention.Compute"/>, named after the Python library's arguments.</summary>
public sealed record RetentionOptions
{
    /// <summary>A common explicit chunk size; with no chunk size the library picks one per shape (<see cref="ChunkSizeSelector"/>).</summary>
    public const int DefaultChunkSize = 1024;

    /// <summary>Degree p of the power; even and at least 2. Default 2.</summary>
    public int Degree { get; init; } = 2;

    /// <summary>Scale applied to q . k before the power; null means 1/sqrt(d).</summary>
    public float? Scale { get; init; }

    /// <summary>
    /// Tokens per chunk; 0 means the quadratic form over the whole sequence; null (the default) lets
    /// <see cref="ChunkSizeSelector"/> pick the fastest size for the shape, which changes no result beyond float rounding.
    /// </summary>
    public int? ChunkSize { get; init; }

    /// <summary>Sequences shorter than this use the quadratic form; null never switches.</summary>
    public int? SwitchOverSeqLen { get; init; }

    /// <summary>Whether to return the state after the last token.</summary>
    public bool ReturnFinalState { get; init; }

    /// <summary>Worker threads to use; null means every core.</summary>
    public int? MaxDegreeOfParallelism { get; init; }

    /// <summary>The kernels to run; null means the CPU backend.</summary>
    public IComputeBackend? Backend { get; init; }
}

/// <summary>Output of <see cref="Retention.Compute"/>.</summary>
/// <param name="Output">Y, shape (b, t, hq, e), in the inputs' data type unless an output tensor was given.</param>
/// <param name="FinalState">The state after the last token when requested, else null.</param>
public sealed record RetentionResult(Tensor Output, RetentionState? FinalState);
