using System.Numerics;

namespace PowerRetention.Kernels;

/// <summary>
/// Token-by-token retention, the counterpart of the Python library's <c>power_retention_inference</c>.
/// It keeps the state (S, s) plus a cache of at most <see cref="SwitchOverSeqLen"/> recent keys and
/// values; when the cache is full it is folded into the state, so memory and the cost of a step stay
/// bounded however long the history grows. Outputs equal the quadratic form over the whole history.
/// Not thread-safe.
/// </summary>
public sealed class DecodeState
{
    private readonly SymmetricPowerBasis _basis;
    private readonly HeadState[] _states;
    private readonly float[][] _cacheKeys;
    private readonly float[][] _cacheValues;
    private readonly double[][] _cacheGates;
    private readonly double[] _currentGate;
    private readonly float[] _phi;
    private readonly float[] _scaled;
    private readonly double[] _numerator;
    private readonly float[] _accumulator;
    private readonly float[] _foldPhi;
    private readonly float[] _foldKey;
    private int _cacheLength;

    /// <summary>Creates a decode state, empty or continuing from <paramref name="initialState"/> (copied).</summary>
    /// <exception cref="ArgumentOutOfRangeException">A size is not positive, the degree is odd, or hq is not a multiple of h.</exception>
    /// <exception cref="ArgumentException">The initial state does not match the sizes.</exception>
    public DecodeState(int batch, int heads, int queryHeads, int keyDim, int valueDim, int degree = 2, float? scale = null, int switchOverSeqLen = RetentionOptions.DefaultChunkSize, RetentionState? initialState = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(heads, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(keyDim, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(valueDim, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(switchOverSeqLen, 1);
        if (queryHeads < 1 || queryHeads % heads != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(queryHeads), queryHeads, $"Query heads hq={queryHeads} must be a positive multiple of key/value heads h={heads}.");
        }

        RetentionValidation.CheckDegree(degree);
        Batch = batch;
        Heads = heads;
        QueryHeads = queryHeads;
        KeyDim = keyDim;
        ValueDim = valueDim;
        Degree = degree;
        Scale = RetentionValidation.ResolveScale(scale, keyDim);
        SwitchOverSeqLen = switchOverSeqLen;
        RetentionValidation.CheckStateFits(batch, heads, SymmetricPowerBasis.ExpandedDimOf(keyDim, degree), valueDim, "decode state");
        _basis = SymmetricPowerBasis.Get(keyDim, degree);

        if (initialState is not null)
        {
            RetentionProblem.CheckState(initialState, batch, heads, keyDim, valueDim, degree);
        }

        int units = batch * heads;
        _states = new HeadState[units];
        _cacheKeys = new float[units][];
        _cacheValues = new float[units][];
        _cacheGates = new double[units][];
        _currentGate = new double[units];
        for (int u = 0; u < units; u++)
        {
            _states[u] = initialState?.HeadStates[u].Clone() ?? new HeadState(_basis.ExpandedDim, valueDim);
            _cacheKeys[u] = new float[switchOverSeqLen * keyDim];
            _cacheValues[u] = new float[switchOverSeqLen * valueDim];
            _cacheGates[u] = new double[switchOverSeqLen];
        }

        _phi = new float[_basis.ExpandedDim];
        _scaled = new float[keyDim];
        _numerator = new double[valueDim];
        _accumulator = new float[valueDim];
        _foldPhi = new float[_basis.ExpandedDim];
        _foldKey = new float[keyDim];
    }

    /// <summary>Batch size b.</summary>
    public int Batch { get; }

    /// <summary>Key/value heads h.</summary>
    public int Heads { get; }

    /// <summary>Query heads hq.</summary>
    public int QueryHeads { get; }

    /// <summary>Key dimension d.</summary>
    public int KeyDim { get; }

    /// <summary>Value dimension e.</summary>
    public int ValueDim { get; }

    /// <summary>Degree p.</summary>
    public int Degree { get; }

    /// <summary>Scale applied to q . k.</summary>
    public float Scale { get; }

    /// <summary>Cache capacity; a full cache is folded into the state before the next token.</summary>
    public int SwitchOverSeqLen { get; }

    /// <summary>Tokens processed so far, not counting any history inside an initial state.</summary>
    public long Position { get; private set; }

    /// <summary>Tokens in the cache, not yet folded into the state.</summary>
    public int CacheLength => _cacheLength;

    /// <summary>
    /// Appends tokens and returns their outputs. With several tokens each query sees exactly the keys
    /// before it and its own, with its own cumulative gate.
    /// </summary>
    /// <param name="q">Queries, (b, n, hq, d).</param>
    /// <param name="k">Keys, (b, n, h, d).</param>
    /// <param name="v">Values, (b, n, h, e).</param>
    /// <param name="logG">Optional log-gates, (b, n, h), every value &lt;= 0.</param>
    /// <returns>Y, (b, n, hq, e), in the data type of <paramref name="q"/>.</returns>
    /// <exception cref="ArgumentException">A shape does not match this state, or a value is NaN, infinite or a positive log-gate. The state is unchanged.</exception>
    public Tensor Step(Tensor q, Tensor k, Tensor v, Tensor? logG = null)
    {
        RetentionProblem.CheckShapes(q, k, v, logG);
        if (q.Dim(0) != Batch || q.Dim(2) != QueryHeads || q.Dim(3) != KeyDim || k.Dim(2) != Heads || v.Dim(3) != ValueDim)
        {
            throw new ArgumentException($"Step inputs Q {Tensor.FormatShape(q.Shape)}, K {Tensor.FormatShape(k.Shape)}, V {Tensor.FormatShape(v.Shape)} do not match this decode state (b={Batch}, hq={QueryHeads}, h={Heads}, d={KeyDim}, e={ValueDim}).", nameof(q));
        }

        RetentionValidation.CheckFinite(q, "Q");
        RetentionValidation.CheckFinite(k, "K");
        RetentionValidation.CheckFinite(v, "V");
        if (logG is not null)
        {
            RetentionValidation.CheckLogGates(logG, "log_G");
        }

        int tokens = q.Dim(1);
        int group = QueryHeads / Heads;
        var output = Tensor.Zeros(q.DataType, Batch, tokens, QueryHeads, ValueDim);
        var query = new float[KeyDim];
        var row = new float[ValueDim];
        Span<float> one = stackalloc float[1];
        for (int i = 0; i < tokens; i++)
        {
            if (_cacheLength == SwitchOverSeqLen)
            {
                FoldCache();
            }

            for (int batch = 0; batch < Batch; batch++)
            {
                for (int head = 0; head < Heads; head++)
                {
                    int unit = (batch * Heads) + head;
                    long kvRow = (((long)batch * tokens) + i) * Heads + head;
                    k.Storage.Read(kvRow * KeyDim, _cacheKeys[unit].AsSpan(_cacheLength * KeyDim, KeyDim));
                    v.Storage.Read(kvRow * ValueDim, _cacheValues[unit].AsSpan(_cacheLength * ValueDim, ValueDim));
                    float gate = 0f;
                    if (logG is not null)
                    {
                        logG.Storage.Read(kvRow, one);
                        gate = one[0];
                    }

                    _currentGate[unit] += gate;
                    _cacheGates[unit][_cacheLength] = _currentGate[unit];

                    for (int r = 0; r < group; r++)
                    {
                        int queryHead = (head * group) + r;
                        long qRow = (((long)batch * tokens) + i) * QueryHeads + queryHead;
                        q.Storage.Read(qRow * KeyDim, query);
                        Attend(unit, query, row);
                        output.Storage.Write(qRow * ValueDim, row);
                    }
                }
            }

            _cacheLength++;
            Position++;
        }

        return output;
    }

    /// <summary>Returns the state after every token so far, with the cache folded in; this object is unchanged.</summary>
    public RetentionState ToState()
    {
        var heads = new HeadState[_states.Length];
        for (int u = 0; u < heads.Length; u++)
        {
            heads[u] = _states[u].Clone();
            FoldInto(u, heads[u]);
        }

        return new RetentionState(Batch, Heads, KeyDim, ValueDim, Degree, heads);
    }

    // Output for one query against the cache (tokens 0..cacheLength inclusive) and the state.
    private void Attend(int unit, ReadOnlySpan<float> query, Span<float> destination)
    {
        double[] numerator = _numerator;
        Array.Clear(numerator);
        double denominator = 0;
        double gateNow = _currentGate[unit];
        float[] keys = _cacheKeys[unit];
        float[] values = _cacheValues[unit];
        for (int j = 0; j <= _cacheLength; j++)
        {
            float dot = Dot(query, keys.AsSpan(j * KeyDim, KeyDim)) * Scale;
            double weight = Math.Pow(dot, Degree) * Math.Exp(gateNow - _cacheGates[unit][j]);
            if (weight == 0)
            {
                continue;
            }

            denominator += weight;
            ReadOnlySpan<float> value = values.AsSpan(j * ValueDim, ValueDim);
            for (int m = 0; m < ValueDim; m++)
            {
                numerator[m] += weight * value[m];
            }
        }

        HeadState state = _states[unit];
        if (!state.IsZero)
        {
            // The state is decayed by every gate since it was last folded.
            for (int a = 0; a < KeyDim; a++)
            {
                _scaled[a] = query[a] * Scale;
            }

            _basis.EmbedQuery(_scaled, _phi);
            double decay = Math.Exp(gateNow);
            float[] accumulator = _accumulator;
            Array.Clear(accumulator);
            float normalizer = 0f;
            for (int f = 0; f < _phi.Length; f++)
            {
                float weight = _phi[f];
                normalizer += weight * state.Normalizer[f];
                Axpy(weight, state.Values.AsSpan(f * ValueDim, ValueDim), accumulator);
            }

            denominator += decay * normalizer;
            for (int m = 0; m < ValueDim; m++)
            {
                numerator[m] += decay * accumulator[m];
            }
        }

        for (int m = 0; m < ValueDim; m++)
        {
            destination[m] = denominator == 0 ? 0f : (float)(numerator[m] / denominator);
        }
    }

    private void FoldCache()
    {
        for (int u = 0; u < _states.Length; u++)
        {
            FoldInto(u, _states[u]);
            _currentGate[u] = 0;
        }

        _cacheLength = 0;
    }

    // state = exp(G_last) state + sum_j exp(G_last - G_j) phiK(k_j) v_j^T over the cached tokens.
    private void FoldInto(int unit, HeadState state)
    {
        if (_cacheLength == 0)
        {
            return;
        }

        double gateLast = _currentGate[unit];
        HeadState.Scale(state.Values, (float)Math.Exp(gateLast));
        HeadState.Scale(state.Normalizer, (float)Math.Exp(gateLast));
        float[] phi = _foldPhi;
        float[] key = _foldKey;
        for (int j = 0; j < _cacheLength; j++)
        {
            float decay = (float)Math.Exp((gateLast - _cacheGates[unit][j]) / Degree);
            for (int a = 0; a < KeyDim; a++)
            {
                key[a] = _cacheKeys[unit][(j * KeyDim) + a] * decay;
            }

            _basis.EmbedKey(key, phi);
            ReadOnlySpan<float> value = _cacheValues[unit].AsSpan(j * ValueDim, ValueDim);
            for (int f = 0; f < phi.Length; f++)
            {
                state.Normalizer[f] += phi[f];
                Axpy(phi[f], value, state.Values.AsSpan(f * ValueDim, ValueDim));
            }
        }

        state.IsZero = false;
    }

    private static float Dot(ReadOnlySpan<float> x, ReadOnlySpan<float> y)
    {
        int width = Vector<float>.Count;
        Vector<float> sum = Vector<float>.Zero;
        int i = 0;
        for (; i + width <= x.Length; i += width)
        {
            sum = Vector.FusedMultiplyAdd(new Vector<float>(x.Slice(i, width)), new Vector<float>(y.Slice(i, width)), sum);
        }

        float total = Vector.Sum(sum);
        for (; i < x.Length; i++)
        {
            total += x[i] * y[i];
        }

        return total;
    }

    // target += alpha * x.
    private static void Axpy(float alpha, ReadOnlySpan<float> x, Span<float> target)
    {
        int width = Vector<float>.Count;
        var a = new Vector<float>(alpha);
        int i = 0;
        for (; i + width <= x.Length; i += width)
        {
            Vector.FusedMultiplyAdd(a, new Vector<float>(x.Slice(i, width)), new Vector<float>(target.Slice(i, width))).CopyTo(target.Slice(i, width));
        }

        for (; i < x.Length; i++)
        {
            target[i] = MathF.FusedMultiplyAdd(alpha, x[i], target[i]);
        }
    }
}
