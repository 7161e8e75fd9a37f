using System.Diagnostics;
using System.Numerics;
using System.Runtime.CompilerServices;
using PowerRetention.Kernels.Linear;

namespace PowerRetention.Kernels;

/// <summary>
/// One worker's buffers and the chunk kernels of chunked retention for one (batch, key/value head)
/// and all query heads that read it. A chunk of L tokens is processed in three steps:
/// <list type="number">
/// <item>in-chunk attention: numerator W V and denominator sum W, W[i, j] = (scale q_i . k_j)^p exp(g_i - g_j), j &lt;= i;</item>
/// <item>state query: adds scale^p phiQ(q_i exp(g_i / p)) S and the same with s;</item>
/// <item>state update: S = exp(g_last) S + phiK(k_j exp((g_last - g_j) / p))^T V.</item>
/// </list>
/// Both state steps go over blocks of features so that no D x L embedding is ever held whole.
/// Buffers are cache-line aligned native memory, freed when the engine is collected.
/// Not thread-safe: each worker thread uses its own engine.
/// </summary>
internal sealed unsafe class ChunkEngine
{
    /// <summary>Query rows per block of attention scores.</summary>
    public const int ScoreRows = 64;

    private readonly RetentionProblem _problem;
    private readonly int _chunk;
    private readonly int _chunkPadded;
    private readonly int _keyDim;
    private readonly int _valueDim;
    private readonly int _valuePadded;
    private readonly int _group;
    private readonly int _featureBlock;

    private readonly AlignedBuffer _keysT;
    private readonly AlignedBuffer _keysDecayedT;
    private readonly AlignedBuffer _values;
    private readonly AlignedBuffer _gates;
    private readonly AlignedBuffer _row;
    private readonly AlignedBuffer[] _queries;
    private readonly AlignedBuffer[] _queriesScaledT;
    private readonly AlignedBuffer[] _numerators;
    private readonly AlignedBuffer[] _denominators;
    private readonly AlignedBuffer[] _rowMaxWeights;
    private readonly AlignedBuffer _scores;
    private readonly AlignedBuffer _columnFactors;
    private readonly AlignedBuffer _phiKeys;
    private readonly AlignedBuffer _phiQueries;

    public ChunkEngine(RetentionProblem problem)
    {
        _problem = problem;
        int width = Vector<float>.Count;
        _chunk = problem.ChunkSize;
        _chunkPadded = PaddedStride(_chunk);
        _keyDim = problem.KeyDim;
        _valueDim = problem.ValueDim;
        _valuePadded = RoundUp(_valueDim, width);
        _group = problem.GroupSize;

        // About 256 KiB of embedded features per block keeps the block in L2 beside its GEMM operands.
        _featureBlock = Math.Clamp((65536 / _chunkPadded) / 4 * 4, 4, 256);

        _keysT = Allocate((long)_keyDim * _chunkPadded);
        _keysDecayedT = Allocate((long)_keyDim * _chunkPadded);
        _values = Allocate((long)_chunk * _valuePadded);
        _gates = Allocate(_chunkPadded);
        _row = Allocate(Math.Max(_keyDim, _valueDim));
        _queries = new AlignedBuffer[_group];
        _queriesScaledT = new AlignedBuffer[_group];
        _numerators = new AlignedBuffer[_group];
        _denominators = new AlignedBuffer[_group];
        _rowMaxWeights = new AlignedBuffer[_group];
        for (int r = 0; r < _group; r++)
        {
            _queries[r] = Allocate((long)_chunk * _keyDim);
            _queriesScaledT[r] = Allocate((long)_keyDim * _chunkPadded);
            _numerators[r] = Allocate((long)_chunk * _valuePadded);
            _denominators[r] = Allocate(_chunk);
            _rowMaxWeights[r] = Allocate(_chunk);
        }

        _scores = Allocate((long)ScoreRows * _chunkPadded);
        _columnFactors = Allocate(_chunkPadded);
        _phiKeys = Allocate((long)_featureBlock * _chunkPadded);
        _phiQueries = Allocate((long)_featureBlock * _chunkPadded);
    }

    /// <summary>The problem this engine was sized for.</summary>
    public RetentionProblem Problem => _problem;

    /// <summary>Whether attention steps also record each row's largest weight.</summary>
    public bool TrackRowMax { get; set; }

    /// <summary>Numerators of the last chunk for query head r of the group, L rows of stride <see cref="ValueStride"/>.</summary>
    public ReadOnlySpan<float> Numerator(int r) => _numerators[r].Span;

    /// <summary>Denominators of the last chunk for query head r of the group.</summary>
    public ReadOnlySpan<float> Denominator(int r) => _denominators[r].Span;

    /// <summary>Largest weight of each row of the last chunk, when <see cref="TrackRowMax"/> is set.</summary>
    public ReadOnlySpan<float> RowMaxWeight(int r) => _rowMaxWeights[r].Span;

    /// <summary>Row stride of <see cref="Numerator"/>.</summary>
    public int ValueStride => _valuePadded;

    /// <summary>
    /// Processes tokens [start, start + length) of (batch, kvHead), a chunk or the tail of one.
    /// Attention and the state query accumulate into the numerators and denominators; the update
    /// then advances <paramref name="state"/> to the end of the chunk.
    /// </summary>
    /// <param name="queryGateOffset">Log-decay from the state's time point to the chunk start, applied to the state query.</param>
    /// <returns>The chunk's total log-decay g_last.</returns>
    public float ProcessChunk(int batch, int kvHead, int start, int length, HeadState state, bool attention, bool queryState, bool updateState, float queryGateOffset = 0f)
    {
        Debug.Assert(length > 0 && length <= _chunk);
        bool readState = queryState && !state.IsZero;

        LoadGates(batch, kvHead, start, length);
        float gLast = _gates[length - 1];
        if (attention || updateState)
        {
            LoadKeysAndValues(batch, kvHead, start, length, gLast, updateState);
        }

        for (int r = 0; r < _group; r++)
        {
            if (attention || readState)
            {
                LoadQueries(batch, (kvHead * _group) + r, start, length, r, readState, queryGateOffset);
            }

            _numerators[r].AsSpan(0, length * _valuePadded).Clear();
            _denominators[r].AsSpan(0, length).Clear();
            if (attention)
            {
                Attend(r, length);
            }
        }

        if (readState || updateState)
        {
            QueryAndUpdateState(length, state, readState, updateState, gLast);
        }

        // The kernels work through raw pointers into buffers that are freed when this engine is collected.
        GC.KeepAlive(this);
        return gLast;
    }

    /// <summary>Writes y = numerator / denominator (0 where the denominator is 0) of the last chunk to <paramref name="output"/>.</summary>
    public void WriteNormalized(Tensor output, int batch, int kvHead, int start, int length)
    {
        RetentionProblem p = _problem;
        Span<float> row = _row.AsSpan(0, _valueDim);
        for (int r = 0; r < _group; r++)
        {
            int queryHead = (kvHead * _group) + r;
            for (int i = 0; i < length; i++)
            {
                Normalize(_numerators[r].AsSpan(i * _valuePadded, _valueDim), _denominators[r][i], row);
                output.Storage.Write(RetentionProblem.RowOffset(batch, p.Time, start + i, p.QueryHeads, queryHead, _valueDim), row);
            }
        }

        GC.KeepAlive(this);
    }

    /// <summary>
    /// Adds the numerators and denominators of the last chunk to <paramref name="partial"/>, laid out as
    /// [token][query head of the group][e values, then the denominator].
    /// </summary>
    public void AccumulatePartial(Span<float> partial, int firstToken, int length)
    {
        int stride = _valueDim + 1;
        for (int i = 0; i < length; i++)
        {
            for (int r = 0; r < _group; r++)
            {
                Span<float> target = partial.Slice(((((firstToken + i) * _group) + r) * stride), stride);
                HeadState.Add(target[.._valueDim], _numerators[r].AsSpan(i * _valuePadded, _valueDim));
                target[_valueDim] += _denominators[r][i];
            }
        }

        GC.KeepAlive(this);
    }

    /// <summary>Writes the normalised sum of <paramref name="partial"/> and the last chunk's numerators to the output.</summary>
    public void WriteWithPartial(Tensor output, ReadOnlySpan<float> partial, int firstToken, int batch, int kvHead, int start, int length)
    {
        RetentionProblem p = _problem;
        int stride = _valueDim + 1;
        Span<float> row = _row.AsSpan(0, _valueDim);
        for (int r = 0; r < _group; r++)
        {
            int queryHead = (kvHead * _group) + r;
            for (int i = 0; i < length; i++)
            {
                ReadOnlySpan<float> source = partial.Slice((((firstToken + i) * _group) + r) * stride, stride);
                Span<float> numerator = _numerators[r].AsSpan(i * _valuePadded, _valueDim);
                HeadState.Add(numerator, source[.._valueDim]);
                Normalize(numerator, _denominators[r][i] + source[_valueDim], row);
                output.Storage.Write(RetentionProblem.RowOffset(batch, p.Time, start + i, p.QueryHeads, queryHead, _valueDim), row);
            }
        }

        GC.KeepAlive(this);
    }

    private static void Normalize(ReadOnlySpan<float> numerator, float denominator, Span<float> destination)
    {
        // A row whose weights are all zero outputs zero: the only choice that does not depend on chunking.
        if (denominator == 0f)
        {
            destination.Clear();
            return;
        }

        float inverse = 1f / denominator;
        for (int j = 0; j < destination.Length; j++)
        {
            destination[j] = numerator[j] * inverse;
        }
    }

    private void LoadGates(int batch, int kvHead, int start, int length)
    {
        RetentionProblem p = _problem;
        if (p.LogG is null)
        {
            _gates.AsSpan(0, length).Clear();
            return;
        }

        // In-chunk cumulative log-gate g, relative to the chunk start and including each token's own gate.
        Span<float> one = stackalloc float[1];
        double sum = 0;
        for (int j = 0; j < length; j++)
        {
            p.LogG.Storage.Read(((((long)batch * p.Time) + start + j) * p.Heads) + kvHead, one);
            sum += one[0];
            _gates[j] = (float)sum;
        }
    }

    private void LoadKeysAndValues(int batch, int kvHead, int start, int length, float gLast, bool decayedKeys)
    {
        RetentionProblem p = _problem;
        Span<float> row = _row.AsSpan(0, _keyDim);
        float inverseDegree = 1f / p.Degree;
        bool gated = p.LogG is not null;
        for (int j = 0; j < length; j++)
        {
            p.K.Storage.Read(RetentionProblem.RowOffset(batch, p.Time, start + j, p.Heads, kvHead, _keyDim), row);
            float decay = gated ? MathF.Exp((gLast - _gates[j]) * inverseDegree) : 1f;
            for (int a = 0; a < _keyDim; a++)
            {
                _keysT[(a * _chunkPadded) + j] = row[a];
            }

            if (decayedKeys)
            {
                for (int a = 0; a < _keyDim; a++)
                {
                    _keysDecayedT[(a * _chunkPadded) + j] = row[a] * decay;
                }
            }

            p.V.Storage.Read(RetentionProblem.RowOffset(batch, p.Time, start + j, p.Heads, kvHead, _valueDim), _values.AsSpan(j * _valuePadded, _valueDim));
        }
    }

    private void LoadQueries(int batch, int queryHead, int start, int length, int r, bool scaledTranspose, float gateOffset)
    {
        RetentionProblem p = _problem;
        AlignedBuffer rows = _queries[r];
        AlignedBuffer scaledT = _queriesScaledT[r];
        float inverseDegree = 1f / p.Degree;
        bool gated = p.LogG is not null;
        for (int i = 0; i < length; i++)
        {
            Span<float> row = rows.AsSpan(i * _keyDim, _keyDim);
            p.Q.Storage.Read(RetentionProblem.RowOffset(batch, p.Time, start + i, p.QueryHeads, queryHead, _keyDim), row);
            if (scaledTranspose)
            {
                // scale^p phiQ(q exp(g / p)) = phiQ(scale q exp(g / p)) because phiQ is homogeneous of degree p.
                float factor = p.Scale * (gated || gateOffset != 0f ? MathF.Exp((gateOffset + _gates[i]) * inverseDegree) : 1f);
                for (int a = 0; a < _keyDim; a++)
                {
                    scaledT[(a * _chunkPadded) + i] = row[a] * factor;
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Attend(int r, int length)
    {
        int width = Vector<float>.Count;
        float scale = _problem.Scale;
        int degree = _problem.Degree;
        bool gated = _problem.LogG is not null;
        AlignedBuffer numerator = _numerators[r];
        AlignedBuffer denominator = _denominators[r];
        AlignedBuffer rowMax = _rowMaxWeights[r];
        var lane = Vector<int>.Indices;

        fixed (float* queries = _queries[r], keysT = _keysT, values = _values, scores = _scores, gates = _gates, numeratorPtr = numerator, columnFactors = _columnFactors)
        {
            for (int i0 = 0; i0 < length; i0 += ScoreRows)
            {
                int rows = Math.Min(ScoreRows, length - i0);
                int end = i0 + rows;
                int columns = Math.Min(RoundUp(end, width), _chunkPadded);

                // Scores for this block of query rows against every key up to the last row.
                for (int i = 0; i < rows; i++)
                {
                    new Span<float>(scores + ((long)i * _chunkPadded), columns).Clear();
                }

                Gemm.MultiplyAdd(rows, columns, _keyDim, queries + ((long)i0 * _keyDim), _keyDim, 1, keysT, _chunkPadded, scores, _chunkPadded);

                // Left of the block's first row, exp(g_i - g_j) = exp(g_i - g_i0) * exp(g_i0 - g_j): both factors are
                // at most 1 because g never increases, so i0 + rows exponentials replace rows * i0 of them.
                if (gated)
                {
                    var g0 = new Vector<float>(gates[i0]);
                    for (int j = 0; j < i0; j += width)
                    {
                        Store(columnFactors + j, Vector.Exp(g0 - Load(gates + j)));
                    }
                }

                // Weights: (scale s)^p, times the gate factor, zero above the diagonal.
                for (int ii = 0; ii < rows; ii++)
                {
                    int i = i0 + ii;
                    float* row = scores + ((long)ii * _chunkPadded);
                    var gi = new Vector<float>(gates[i]);
                    var rowFactor = new Vector<float>(gated ? MathF.Exp(gates[i] - gates[i0]) : 1f);
                    Vector<float> sum = Vector<float>.Zero;
                    Vector<float> max = Vector<float>.Zero;
                    for (int j = 0; j < columns; j += width)
                    {
                        if (j > i)
                        {
                            Store(row + j, Vector<float>.Zero);
                            continue;
                        }

                        Vector<float> t = Load(row + j) * scale;
                        Vector<float> t2 = t * t;
                        Vector<float> w = t2;
                        for (int power = 2; power < degree; power += 2)
                        {
                            w *= t2;
                        }

                        if (gated)
                        {
                            w *= j < i0
                                ? rowFactor * Load(columnFactors + j)
                                : Vector.Exp(Vector.Min(gi - Load(gates + j), Vector<float>.Zero));
                        }

                        if (j + width - 1 > i)
                        {
                            w = Vector.ConditionalSelect(Vector.LessThanOrEqual(lane + new Vector<int>(j), new Vector<int>(i)).As<int, float>(), w, Vector<float>.Zero);
                        }

                        Store(row + j, w);
                        sum += w;
                        max = Vector.Max(max, w);
                    }

                    denominator[i] += Vector.Sum(sum);
                    if (TrackRowMax)
                    {
                        float m = 0f;
                        for (int lane2 = 0; lane2 < width; lane2++)
                        {
                            m = MathF.Max(m, max[lane2]);
                        }

                        rowMax[i] = m;
                    }
                }

                Gemm.MultiplyAdd(rows, _valuePadded, end, scores, _chunkPadded, 1, values, _valuePadded, numeratorPtr + ((long)i0 * _valuePadded), _valuePadded);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void QueryAndUpdateState(int length, HeadState state, bool readState, bool updateState, float gLast)
    {
        SymmetricPowerBasis basis = _problem.Basis;
        int expanded = basis.ExpandedDim;
        int valueDim = _valueDim;
        float decay = MathF.Exp(gLast);

        fixed (float* stateValues = state.Values, normalizer = state.Normalizer, phiK = _phiKeys, phiQ = _phiQueries, values = _values)
        {
            for (int f0 = 0; f0 < expanded; f0 += _featureBlock)
            {
                int features = Math.Min(_featureBlock, expanded - f0);

                // Queries read the state as it was at the chunk start, so every query of this block runs before its update.
                if (readState)
                {
                    for (int r = 0; r < _group; r++)
                    {
                        Embed(basis, f0, features, _queriesScaledT[r], phiQ, length, withCoefficients: false);
                        fixed (float* numerator = _numerators[r], denominator = _denominators[r])
                        {
                            Gemm.MultiplyAdd(length, valueDim, features, phiQ, 1, _chunkPadded, stateValues + ((long)f0 * valueDim), valueDim, numerator, _valuePadded);
                            AccumulateWeighted(phiQ, normalizer + f0, features, denominator, length);
                        }
                    }
                }

                if (updateState)
                {
                    Embed(basis, f0, features, _keysDecayedT, phiK, length, withCoefficients: true);
                    Span<float> block = new(stateValues + ((long)f0 * valueDim), features * valueDim);
                    Span<float> normalizerBlock = new(normalizer + f0, features);
                    HeadState.Scale(block, decay);
                    HeadState.Scale(normalizerBlock, decay);
                    Gemm.MultiplyAdd(features, valueDim, length, phiK, _chunkPadded, 1, values, _valuePadded, stateValues + ((long)f0 * valueDim), valueDim);
                    for (int f = 0; f < features; f++)
                    {
                        normalizerBlock[f] += SumRow(phiK + ((long)f * _chunkPadded), length);
                    }
                }
            }
        }

        if (updateState)
        {
            state.IsZero = false;
        }
    }

    // Rows f0 .. f0 + features of the embedding of the columns of sourceT (d x chunkPadded) into target.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Embed(SymmetricPowerBasis basis, int f0, int features, AlignedBuffer sourceT, float* target, int length, bool withCoefficients)
    {
        int width = Vector<float>.Count;
        int degree = basis.Degree;
        int columns = RoundUp(length, width);
        int[] indices = basis.Indices;
        float[] coefficients = basis.KeyCoefficients;
        fixed (float* source = sourceT)
        {
            for (int f = 0; f < features; f++)
            {
                int feature = f0 + f;
                float* destination = target + ((long)f * _chunkPadded);
                float* first = source + ((long)indices[feature * degree] * _chunkPadded);
                float* second = source + ((long)indices[(feature * degree) + 1] * _chunkPadded);
                var coefficient = new Vector<float>(withCoefficients ? coefficients[feature] : 1f);
                for (int j = 0; j < columns; j += width)
                {
                    Store(destination + j, Load(first + j) * Load(second + j) * coefficient);
                }

                for (int m = 2; m < degree; m++)
                {
                    float* next = source + ((long)indices[(feature * degree) + m] * _chunkPadded);
                    for (int j = 0; j < columns; j += width)
                    {
                        Store(destination + j, Load(destination + j) * Load(next + j));
                    }
                }
            }
        }
    }

    // denominator[i] += sum over f of phi[f, i] * weights[f], for i < length.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void AccumulateWeighted(float* phi, float* weights, int features, float* denominator, int length)
    {
        int width = Vector<float>.Count;
        int full = length / width * width;
        for (int f = 0; f < features; f++)
        {
            float* row = phi + ((long)f * _chunkPadded);
            var weight = new Vector<float>(weights[f]);
            int i = 0;
            for (; i < full; i += width)
            {
                Store(denominator + i, Vector.FusedMultiplyAdd(Load(row + i), weight, Load(denominator + i)));
            }

            for (; i < length; i++)
            {
                denominator[i] = MathF.FusedMultiplyAdd(row[i], weights[f], denominator[i]);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float SumRow(float* row, int length)
    {
        int width = Vector<float>.Count;
        Vector<float> sum = Vector<float>.Zero;
        int j = 0;
        for (; j + width <= length; j += width)
        {
            sum += Load(row + j);
        }

        float total = Vector.Sum(sum);
        for (; j < length; j++)
        {
            total += row[j];
        }

        return total;
    }

    private static Vector<float> Load(float* p) => System.Runtime.CompilerServices.Unsafe.ReadUnaligned<Vector<float>>(p);

    private static void Store(float* p, Vector<float> value) => System.Runtime.CompilerServices.Unsafe.WriteUnaligned(p, value);

    private static int RoundUp(int value, int multiple) => (value + multiple - 1) / multiple * multiple;

    // Row stride of token-indexed buffers: whole vectors and an odd number of 64-byte cache lines.
    // The GEMMs step down columns of these buffers. With a stride of 4 KiB (a chunk of 1024 floats) every
    // step would map to the same L1 set and evict lines still in use.
    private static int PaddedStride(int length)
    {
        const int lineFloats = 16;
        int stride = RoundUp(Math.Max(length, 1), lineFloats);
        return stride / lineFloats % 2 == 0 ? stride + lineFloats : stride;
    }

    // Cache-line aligned, with a vector of slack for padded reads.
    private static AlignedBuffer Allocate(long count) => new(checked((int)count + Vector<float>.Count));
}
