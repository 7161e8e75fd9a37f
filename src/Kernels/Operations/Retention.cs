using System.Collections.Concurrent;

namespace PowerRetention.Kernels;

/// <summary>
/// Symmetric power retention, the entry points of the Python <c>retention</c> library in .NET terms.
/// </summary>
public static partial class Retention
{
    /// <summary>
    /// Computes y_i = sum_j w[i, j] v_j / sum_j w[i, j] with w[i, j] = (scale q_i . k_j)^p exp(G_i - G_j)
    /// for j &lt;= i, in chunks of <see cref="RetentionOptions.ChunkSize"/> tokens joined through the state.
    /// </summary>
    /// <param name="q">Queries, (b, t, hq, d).</param>
    /// <param name="k">Keys, (b, t, h, d), hq a multiple of h.</param>
    /// <param name="v">Values, (b, t, h, e).</param>
    /// <param name="logG">Optional log-gates, (b, t, h), every value &lt;= 0.</param>
    /// <param name="initialState">Optional state standing for everything before the sequence.</param>
    /// <param name="options">Degree, scale, chunk size and the rest; null means the defaults.</param>
    /// <param name="output">Optional (b, t, hq, e) tensor to write into, such as a file-backed one.</param>
    /// <param name="progress">Receives the number of token-heads finished so far.</param>
    /// <param name="cancellationToken">Stops the computation between chunks.</param>
    /// <returns>The output and, when requested, the state after the last token.</returns>
    /// <exception cref="ArgumentException">Shapes disagree, hq % h != 0, a value is NaN or infinite, a log-gate is positive, or the initial state does not match.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The degree is odd or below 2, the scale is not positive, or the chunk size is negative.</exception>
    /// <exception cref="InsufficientMemoryException">The state or chunk buffers would not fit in memory; the message gives the bytes needed.</exception>
    /// <exception cref="OperationCanceledException">The token was cancelled.</exception>
    public static RetentionResult Compute(
        Tensor q,
        Tensor k,
        Tensor v,
        Tensor? logG = null,
        RetentionState? initialState = null,
        RetentionOptions? options = null,
        Tensor? output = null,
        IProgress<long>? progress = null,
        CancellationToken cancellationToken = default)
    {
        options ??= new RetentionOptions();
        RetentionProblem problem = RetentionProblem.Create(q, k, v, logG, initialState, options);
        output ??= Tensor.Zeros(q.DataType, problem.Batch, problem.Time, problem.QueryHeads, problem.ValueDim);
        CheckOutput(output, problem);

        RetentionState? finalState = options.Backend is null or CpuBackend
            ? Run(problem, initialState, output, options.ReturnFinalState, options.MaxDegreeOfParallelism, progress, cancellationToken)
            : RunOnBackend(options.Backend, problem, initialState, output, options.ReturnFinalState, progress, cancellationToken);
        return new RetentionResult(output, finalState);
    }

    internal static void CheckOutput(Tensor output, RetentionProblem problem)
    {
        if (output.Rank != 4 || output.Dim(0) != problem.Batch || output.Dim(1) != problem.Time || output.Dim(2) != problem.QueryHeads || output.Dim(3) != problem.ValueDim)
        {
            throw new ArgumentException($"Output must have shape ({problem.Batch}, {problem.Time}, {problem.QueryHeads}, {problem.ValueDim}); got {Tensor.FormatShape(output.Shape)}.", nameof(output));
        }
    }

    /// <summary>
    /// Runs a validated problem on this process's cores. With at least as many (batch, head) units as
    /// workers, each unit runs straight through; otherwise each unit is cut into segments that run in
    /// parallel and are joined by the scan over segment summaries, the same algorithm a cluster uses.
    /// </summary>
    internal static RetentionState? Run(RetentionProblem problem, RetentionState? initialState, Tensor output, bool returnFinalState, int? maxParallelism, IProgress<long>? progress, CancellationToken cancellationToken)
    {
        int workers = Math.Max(1, maxParallelism ?? Environment.ProcessorCount);
        int units = problem.Batch * problem.Heads;
        var finalStates = new HeadState[units];
        if (problem.Time == 0)
        {
            for (int u = 0; u < units; u++)
            {
                finalStates[u] = initialState?.HeadStates[u].Clone() ?? new HeadState(problem.ExpandedDim, problem.ValueDim);
            }

            return returnFinalState ? BuildState(problem, finalStates) : null;
        }

        using var engines = new EnginePool(problem);
        long done = 0;
        void OnChunkDone(int tokens)
        {
            long total = Interlocked.Add(ref done, (long)tokens * problem.GroupSize);
            progress?.Report(total);
        }

        int segmentsPerUnit = Math.Min(problem.ChunkCount, (workers + units - 1) / units);
        var parallelOptions = new ParallelOptions { MaxDegreeOfParallelism = workers, CancellationToken = cancellationToken };
        if (segmentsPerUnit <= 1)
        {
            Parallel.For(0, units, parallelOptions, u =>
            {
                HeadState state = initialState?.HeadStates[u].Clone() ?? new HeadState(problem.ExpandedDim, problem.ValueDim);
                ChunkEngine engine = engines.Rent();
                try
                {
                    SegmentRunner.RunDirect(engine, u / problem.Heads, u % problem.Heads, 0, problem.Time, state, output, returnFinalState, OnChunkDone, cancellationToken);
                }
                finally
                {
                    engines.Return(engine);
                }

                finalStates[u] = state;
            });
        }
        else
        {
            RunSegmented(problem, initialState, output, segmentsPerUnit, finalStates, engines, parallelOptions, OnChunkDone, cancellationToken);
        }

        return returnFinalState ? BuildState(problem, finalStates) : null;
    }

    private static void RunSegmented(RetentionProblem problem, RetentionState? initialState, Tensor output, int segmentsPerUnit, HeadState[] finalStates, EnginePool engines, ParallelOptions parallelOptions, Action<int> onChunkDone, CancellationToken cancellationToken)
    {
        int units = problem.Batch * problem.Heads;
        int chunksPerSegment = (problem.ChunkCount + segmentsPerUnit - 1) / segmentsPerUnit;
        int segmentTokens = chunksPerSegment * problem.ChunkSize;
        int segments = (problem.Time + segmentTokens - 1) / segmentTokens;
        int partialStride = problem.GroupSize * (problem.ValueDim + 1);
        var partials = new float[units * segments][];
        var summaries = new SegmentSummary[units * segments];

        // Phase 1: every segment of every unit in parallel, each from a zero state.
        Parallel.For(0, units * segments, parallelOptions, index =>
        {
            int unit = index / segments, segment = index % segments;
            int start = segment * segmentTokens, end = Math.Min(problem.Time, start + segmentTokens);
            partials[index] = new float[(long)(end - start) * partialStride];
            ChunkEngine engine = engines.Rent();
            try
            {
                summaries[index] = SegmentRunner.RunPhase1(engine, unit / problem.Heads, unit % problem.Heads, start, end, partials[index], onChunkDone, cancellationToken);
            }
            finally
            {
                engines.Return(engine);
            }
        });

        // Phase 2: exclusive scan of the summaries gives the state entering each segment.
        var incoming = new HeadState[units * segments];
        for (int unit = 0; unit < units; unit++)
        {
            HeadState state = initialState?.HeadStates[unit].Clone() ?? new HeadState(problem.ExpandedDim, problem.ValueDim);
            for (int segment = 0; segment < segments; segment++)
            {
                incoming[(unit * segments) + segment] = state;
                state = summaries[(unit * segments) + segment].Apply(state);
            }

            finalStates[unit] = state;
        }

        // Phase 3: add each incoming state's contribution and normalise.
        Parallel.For(0, units * segments, parallelOptions, index =>
        {
            int unit = index / segments, segment = index % segments;
            int start = segment * segmentTokens, end = Math.Min(problem.Time, start + segmentTokens);
            ChunkEngine engine = engines.Rent();
            try
            {
                SegmentRunner.RunPhase3(engine, unit / problem.Heads, unit % problem.Heads, start, end, incoming[index], partials[index], output, null, cancellationToken);
            }
            finally
            {
                engines.Return(engine);
            }

            partials[index] = [];
        });
    }

    // Other backends own their parallelism (a GPU runs one unit at a time here), so units run in order.
    private static RetentionState? RunOnBackend(IComputeBackend backend, RetentionProblem problem, RetentionState? initialState, Tensor output, bool returnFinalState, IProgress<long>? progress, CancellationToken cancellationToken)
    {
        int units = problem.Batch * problem.Heads;
        var finalStates = new HeadState[units];
        long done = 0;
        for (int u = 0; u < units; u++)
        {
            HeadState state = initialState?.HeadStates[u].Clone() ?? new HeadState(problem.ExpandedDim, problem.ValueDim);
            if (problem.Time > 0)
            {
                backend.RunDirect(problem, u / problem.Heads, u % problem.Heads, 0, problem.Time, state, output, returnFinalState, tokens => progress?.Report(done += (long)tokens * problem.GroupSize), cancellationToken);
            }

            finalStates[u] = state;
        }

        return returnFinalState ? BuildState(problem, finalStates) : null;
    }

    private static RetentionState BuildState(RetentionProblem problem, HeadState[] heads) =>
        new(problem.Batch, problem.Heads, problem.KeyDim, problem.ValueDim, problem.Degree, heads);

    /// <summary>Engines are large; workers share a few instead of allocating one per task.</summary>
    private sealed class EnginePool(RetentionProblem problem) : IDisposable
    {
        private readonly ConcurrentBag<ChunkEngine> _engines = [];

        public ChunkEngine Rent() => _engines.TryTake(out ChunkEngine? engine) ? engine : new ChunkEngine(problem);

        public void Return(ChunkEngine engine) => _engines.Add(engine);

        public void Dispose() => _engines.Clear();
    }
}
