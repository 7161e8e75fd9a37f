namespace PowerRetention.Kernels;

/// <summary>
/// Validated inputs and sizes of one retention computation: what every chunk and segment kernel reads.
/// </summary>
public sealed class RetentionProblem
{
    private const string QLayout = "(b, t, hq, d)";
    private const string KLayout = "(b, t, h, d)";
    private const string VLayout = "(b, t, h, e)";
    private const string GLayout = "(b, t, h)";

    private RetentionProblem(Tensor q, Tensor k, Tensor v, Tensor? logG, int degree, float scale, int chunkSize)
    {
        Q = q;
        K = k;
        V = v;
        LogG = logG;
        Batch = q.Dim(0);
        Time = q.Dim(1);
        QueryHeads = q.Dim(2);
        KeyDim = q.Dim(3);
        Heads = k.Dim(2);
        ValueDim = v.Dim(3);
        Degree = degree;
        Scale = scale;
        ChunkSize = chunkSize;
        Basis = SymmetricPowerBasis.Get(KeyDim, degree);
    }

    /// <summary>Queries, (b, t, hq, d).</summary>
    public Tensor Q { get; }

    /// <summary>Keys, (b, t, h, d).</summary>
    public Tensor K { get; }

    /// <summary>Values, (b, t, h, e).</summary>
    public Tensor V { get; }

    /// <summary>Log-gates, (b, t, h), or null without gating.</summary>
    public Tensor? LogG { get; }

    /// <summary>Batch size b.</summary>
    public int Batch { get; }

    /// <summary>Sequence length t.</summary>
    public int Time { get; }

    /// <summary>Query heads hq.</summary>
    public int QueryHeads { get; }

    /// <summary>Key/value heads h.</summary>
    public int Heads { get; }

    /// <summary>Query heads per key/value head, hq / h.</summary>
    public int GroupSize => QueryHeads / Heads;

    /// <summary>Key dimension d.</summary>
    public int KeyDim { get; }

    /// <summary>Value dimension e.</summary>
    public int ValueDim { get; }

    /// <summary>Degree p.</summary>
    public int Degree { get; }

    /// <summary>Scale applied to q . k.</summary>
    public float Scale { get; }

    /// <summary>Tokens per chunk (at least 1, at most t unless t is 0).</summary>
    public int ChunkSize { get; }

    /// <summary>Number of chunks, the last possibly partial.</summary>
    public int ChunkCount => Time == 0 ? 0 : (Time + ChunkSize - 1) / ChunkSize;

    /// <summary>The embedding tables for (d, p).</summary>
    public SymmetricPowerBasis Basis { get; }

    /// <summary>Number of features D.</summary>
    public int ExpandedDim => Basis.ExpandedDim;

    /// <summary>
    /// Checks shapes, values, options and memory, and resolves the defaults.
    /// </summary>
    /// <exception cref="ArgumentException">A tensor has the wrong shape, type, or a NaN, infinity or positive log-gate.</exception>
    /// <exception cref="ArgumentOutOfRangeException">Degree, scale or chunk size is invalid.</exception>
    /// <exception cref="InsufficientMemoryException">The state or chunk buffers would not fit in memory.</exception>
    public static RetentionProblem Create(Tensor q, Tensor k, Tensor v, Tensor? logG, RetentionState? initialState, RetentionOptions options, bool checkValues = true)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(k);
        ArgumentNullException.ThrowIfNull(v);
        ArgumentNullException.ThrowIfNull(options);

        RetentionValidation.CheckDegree(options.Degree);
        CheckShapes(q, k, v, logG);
        int batch = q.Dim(0), time = q.Dim(1), heads = k.Dim(2), keyDim = q.Dim(3), valueDim = v.Dim(3);
        float scale = RetentionValidation.ResolveScale(options.Scale, keyDim);

        if (options.ChunkSize < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.ChunkSize, $"ChunkSize must be >= 0 (0 means the quadratic form); got {options.ChunkSize}.");
        }

        if (options.SwitchOverSeqLen is < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.SwitchOverSeqLen, $"SwitchOverSeqLen must be >= 0; got {options.SwitchOverSeqLen}.");
        }

        bool quadratic = options.ChunkSize == 0 || (options.SwitchOverSeqLen is int switchOver && time < switchOver);
        int requested = options.ChunkSize ?? ChunkSizeSelector.Choose(keyDim, valueDim, options.Degree, logG is not null, time);
        int chunkSize = quadratic ? Math.Max(time, 1) : Math.Min(requested, Math.Max(time, 1));

        long expanded = SymmetricPowerBasis.ExpandedDimOf(keyDim, options.Degree);
        RetentionValidation.CheckStateFits(batch, heads, expanded, valueDim, "retention state");
        CheckWorkspaceFits(chunkSize, q.Dim(2) / heads, keyDim, valueDim);

        if (initialState is not null)
        {
            CheckState(initialState, batch, heads, keyDim, valueDim, options.Degree);
        }

        if (checkValues)
        {
            RetentionValidation.CheckFinite(q, "Q");
            RetentionValidation.CheckFinite(k, "K");
            RetentionValidation.CheckFinite(v, "V");
            if (logG is not null)
            {
                RetentionValidation.CheckLogGates(logG, "log_G");
            }
        }

        return new RetentionProblem(q, k, v, logG, options.Degree, scale, chunkSize);
    }

    /// <summary>
    /// Scans tokens [start, end) of every input for NaN, infinity and positive log-gates; reported
    /// indices add <paramref name="tokenOffset"/> so that a slice names the token of the whole sequence.
    /// </summary>
    /// <exception cref="ArgumentException">The first bad value, with its tensor and index.</exception>
    public void CheckValues(int start, int end, int tokenOffset = 0)
    {
        RetentionValidation.CheckTokens(Q, "Q", requireNonPositive: false, start, end, tokenOffset);
        RetentionValidation.CheckTokens(K, "K", requireNonPositive: false, start, end, tokenOffset);
        RetentionValidation.CheckTokens(V, "V", requireNonPositive: false, start, end, tokenOffset);
        if (LogG is not null)
        {
            RetentionValidation.CheckTokens(LogG, "log_G", requireNonPositive: true, start, end, tokenOffset);
        }
    }

    /// <summary>Checks that Q, K, V and log_G agree with each other and with the layouts.</summary>
    public static void CheckShapes(Tensor q, Tensor k, Tensor v, Tensor? logG)
    {
        RetentionValidation.CheckRank(q, "Q", 4, QLayout);
        RetentionValidation.CheckRank(k, "K", 4, KLayout);
        RetentionValidation.CheckRank(v, "V", 4, VLayout);
        int batch = q.Dim(0), time = q.Dim(1), queryHeads = q.Dim(2), keyDim = q.Dim(3);
        RetentionValidation.CheckDim(k, "K", 0, batch, "batch size", KLayout);
        RetentionValidation.CheckDim(k, "K", 1, time, "length", KLayout);
        RetentionValidation.CheckDim(k, "K", 3, keyDim, "key dimension", KLayout);
        int heads = k.Dim(2);
        if (heads < 1 || queryHeads < 1 || keyDim < 1 || batch < 1)
        {
            throw new ArgumentException($"Q {Tensor.FormatShape(q.Shape)} and K {Tensor.FormatShape(k.Shape)} need at least one batch, head and key dimension.", heads < 1 ? "K" : "Q");
        }

        if (queryHeads % heads != 0)
        {
            throw new ArgumentException($"Query heads hq={queryHeads} (Q {Tensor.FormatShape(q.Shape)}) must be a multiple of key/value heads h={heads} (K {Tensor.FormatShape(k.Shape)}).", "Q");
        }

        RetentionValidation.CheckDim(v, "V", 0, batch, "batch size", VLayout);
        RetentionValidation.CheckDim(v, "V", 1, time, "length", VLayout);
        RetentionValidation.CheckDim(v, "V", 2, heads, "head count", VLayout);
        if (v.Dim(3) < 1)
        {
            throw new ArgumentException($"V {Tensor.FormatShape(v.Shape)} needs a value dimension of at least 1.", "V");
        }

        if (k.DataType != q.DataType || v.DataType != q.DataType)
        {
            throw new ArgumentException($"Q, K and V must share one data type; got Q {q.DataType.ShortName()}, K {k.DataType.ShortName()}, V {v.DataType.ShortName()}.", k.DataType != q.DataType ? "K" : "V");
        }

        if (logG is not null)
        {
            RetentionValidation.CheckRank(logG, "log_G", 3, GLayout);
            RetentionValidation.CheckDim(logG, "log_G", 0, batch, "batch size", GLayout);
            RetentionValidation.CheckDim(logG, "log_G", 1, time, "length", GLayout);
            RetentionValidation.CheckDim(logG, "log_G", 2, heads, "head count", GLayout);
        }
    }

    /// <summary>Checks that a state matches b, h, d, e and p.</summary>
    public static void CheckState(RetentionState state, int batch, int heads, int keyDim, int valueDim, int degree)
    {
        long expanded = SymmetricPowerBasis.ExpandedDimOf(keyDim, degree);
        if (state.Degree != degree || state.KeyDim != keyDim || state.ExpandedDim != expanded)
        {
            throw new ArgumentException($"Initial state has p={state.Degree}, d={state.KeyDim}, D={state.ExpandedDim}; the inputs need p={degree}, d={keyDim}, D={expanded}.", "initialState");
        }

        if (state.Batch != batch || state.Heads != heads || state.ValueDim != valueDim)
        {
            throw new ArgumentException($"Initial state has b={state.Batch}, h={state.Heads}, e={state.ValueDim}; the inputs have b={batch}, h={heads}, e={valueDim}.", "initialState");
        }
    }

    private static void CheckWorkspaceFits(int chunkSize, int groupSize, int keyDim, int valueDim)
    {
        // Per worker: transposed and scaled copies of Q and K, V, the numerators and a block of scores.
        double floats = (double)chunkSize * (((groupSize + 2) * 2 * keyDim) + ((groupSize + 1) * (valueDim + 8)) + ChunkEngine.ScoreRows + 4096);
        double bytes = floats * sizeof(float) * Environment.ProcessorCount;
        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (bytes > available)
        {
            throw new InsufficientMemoryException($"A chunk of {chunkSize} tokens needs {bytes:N0} bytes of buffers across {Environment.ProcessorCount} workers, but {available:N0} bytes are available; use a smaller chunk size.");
        }
    }

    /// <summary>Offset of element [b, t, head, 0] in a (b, t, heads, dim) tensor.</summary>
    internal static long RowOffset(int batch, int time, int token, int headCount, int head, int dim) =>
        ((((long)batch * time) + token) * headCount + head) * dim;
}
