using PowerRetention.Kernels;

namespace PowerRetention.Grains;

/// <summary>Resolved and checked sizes and options of a decode session.</summary>
internal sealed record SessionConfig(int Batch, int Heads, int QueryHeads, int KeyDim, int ValueDim, int Degree, float Scale, int SwitchOverSeqLen)
{
    /// <summary>Number of features D = C(d + p - 1, p).</summary>
    public int ExpandedDim => (int)SymmetricPowerBasis.ExpandedDimOf(KeyDim, Degree);

    /// <summary>Size of S and s in bytes.</summary>
    public long StateBytes => (long)Batch * Heads * ExpandedDim * (ValueDim + 1L) * sizeof(float);

    /// <summary>Size of a full cache's keys, values and log-gates in bytes.</summary>
    public long CacheBytes => (long)SwitchOverSeqLen * Batch * Heads * (KeyDim + ValueDim + 1L) * sizeof(float);

    /// <summary>Resolves the sizes of an empty session from <paramref name="spec"/>.</summary>
    /// <exception cref="ArgumentException">h or d is missing, or a value is invalid.</exception>
    public static SessionConfig ForEmpty(DecodeSessionSpec spec)
    {
        int heads = spec.Heads ?? throw new ArgumentException("An empty session needs the number of key/value heads (spec.Heads).", nameof(spec));
        int keyDim = spec.KeyDim ?? throw new ArgumentException("An empty session needs the key dimension (spec.KeyDim).", nameof(spec));
        return Create(spec, spec.Batch ?? 1, heads, keyDim, spec.ValueDim ?? keyDim, spec.Degree ?? 2);
    }

    /// <summary>Resolves the sizes of a session that starts from <paramref name="state"/>.</summary>
    /// <param name="spec">Sizes given by the caller; each one given must equal the state's.</param>
    /// <param name="state">The initial state.</param>
    /// <param name="source">Names the state in messages, such as "state file" or "job {id}".</param>
    /// <exception cref="ArgumentException">A size in <paramref name="spec"/> differs from the state's, or an option is invalid.</exception>
    public static SessionConfig ForState(DecodeSessionSpec spec, RetentionState state, string source)
    {
        CheckMatch(source, "batch", state.Batch, spec.Batch);
        CheckMatch(source, "heads", state.Heads, spec.Heads);
        CheckMatch(source, "key_dim", state.KeyDim, spec.KeyDim);
        CheckMatch(source, "value_dim", state.ValueDim, spec.ValueDim);
        CheckMatch(source, "degree", state.Degree, spec.Degree);
        return Create(spec, state.Batch, state.Heads, state.KeyDim, state.ValueDim, state.Degree);
    }

    /// <summary>Creates a decode state with these sizes, continuing from <paramref name="initialState"/> (copied) when given.</summary>
    public DecodeState CreateDecodeState(RetentionState? initialState) =>
        new(Batch, Heads, QueryHeads, KeyDim, ValueDim, Degree, Scale, SwitchOverSeqLen, initialState);

    private static SessionConfig Create(DecodeSessionSpec spec, int batch, int heads, int keyDim, int valueDim, int degree)
    {
        CheckPositive("batch", batch);
        CheckPositive("heads", heads);
        CheckPositive("key_dim", keyDim);
        CheckPositive("value_dim", valueDim);
        CheckPositive("switch_over_seq_len", spec.SwitchOverSeqLen);
        int queryHeads = spec.QueryHeads ?? heads;
        if (queryHeads < 1 || queryHeads % heads != 0)
        {
            throw new ArgumentException($"Query heads hq={queryHeads} must be a positive multiple of key/value heads h={heads}.", nameof(spec));
        }

        try
        {
            RetentionValidation.CheckDegree(degree);
            float scale = RetentionValidation.ResolveScale(spec.Scale, keyDim);
            RetentionValidation.CheckStateFits(batch, heads, SymmetricPowerBasis.ExpandedDimOf(keyDim, degree), valueDim, "decode session state");
            return new SessionConfig(batch, heads, queryHeads, keyDim, valueDim, degree, scale, spec.SwitchOverSeqLen);
        }
        catch (Exception error) when (error is ArgumentOutOfRangeException or InsufficientMemoryException)
        {
            throw new ArgumentException(error.Message, nameof(spec));
        }
    }

    private static void CheckPositive(string field, int value)
    {
        if (value < 1)
        {
            throw new ArgumentException($"The session's {field} must be at least 1; got {value}.", field);
        }
    }

    private static void CheckMatch(string source, string field, int actual, int? requested)
    {
        if (requested is int value && value != actual)
        {
            throw new ArgumentException($"The {source} has {field} {actual}, but the session spec asks for {field} {value}.", field);
        }
    }
}
