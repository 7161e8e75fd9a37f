namespace PowerRetention.Kernels;

/// <summary>
/// The compressed state of one (batch, key/value head): S = sum phiK(k) v^T of shape (D, e), row-major,
/// and the normaliser s = sum phiK(k) of length D, both float32.
/// </summary>
public sealed class HeadState
{
    /// <summary>Creates a zero state.</summary>
    public HeadState(int expandedDim, int valueDim)
    {
        Values = new float[checked((long)expandedDim * valueDim)];
        Normalizer = new float[expandedDim];
        IsZero = true;
    }

    /// <summary>Wraps existing arrays (not copied).</summary>
    public HeadState(float[] values, float[] normalizer)
    {
        Values = values;
        Normalizer = normalizer;
        IsZero = false;
    }

    /// <summary>S, D rows of e values.</summary>
    public float[] Values { get; }

    /// <summary>s, one value per feature.</summary>
    public float[] Normalizer { get; }

    /// <summary>True while the state is known to be all zeros, so reading it can be skipped.</summary>
    public bool IsZero { get; internal set; }

    /// <summary>Returns a deep copy.</summary>
    public HeadState Clone() => new((float[])Values.Clone(), (float[])Normalizer.Clone()) { IsZero = IsZero };

    /// <summary>Sets this state to decay * this + other, the combine step of the discounted sum.</summary>
    public void DecayAndAdd(float decay, HeadState other)
    {
        Scale(Values, decay);
        Scale(Normalizer, decay);
        Add(Values, other.Values);
        Add(Normalizer, other.Normalizer);
        IsZero = IsZero && other.IsZero;
    }

    internal static void Scale(Span<float> values, float factor)
    {
        if (factor == 1f)
        {
            return;
        }

        if (factor == 0f)
        {
            values.Clear();
            return;
        }

        System.Numerics.Vector<float> f = new(factor);
        int width = System.Numerics.Vector<float>.Count;
        int i = 0;
        for (; i + width <= values.Length; i += width)
        {
            var slice = values.Slice(i, width);
            (new System.Numerics.Vector<float>(slice) * f).CopyTo(slice);
        }

        for (; i < values.Length; i++)
        {
            values[i] *= factor;
        }
    }

    internal static void Add(Span<float> target, ReadOnlySpan<float> source)
    {
        int width = System.Numerics.Vector<float>.Count;
        int i = 0;
        for (; i + width <= target.Length; i += width)
        {
            var slice = target.Slice(i, width);
            (new System.Numerics.Vector<float>(slice) + new System.Numerics.Vector<float>(source.Slice(i, width))).CopyTo(slice);
        }

        for (; i < target.Length; i++)
        {
            target[i] += source[i];
        }
    }
}

/// <summary>
/// The retention state of every (batch, key/value head): the initial state that stands for everything
/// before a sequence, or the final state after its last token.
/// </summary>
public sealed class RetentionState
{
    private readonly HeadState[] _heads;

    /// <summary>Creates a zero state.</summary>
    public RetentionState(int batch, int heads, int keyDim, int valueDim, int degree)
        : this(batch, heads, keyDim, valueDim, degree, null)
    {
    }

    /// <summary>Wraps per-head states ordered batch-major (index = batch * heads + head).</summary>
    /// <exception cref="ArgumentException">The head count or a head's sizes do not match.</exception>
    public RetentionState(int batch, int heads, int keyDim, int valueDim, int degree, HeadState[]? headStates)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(heads, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(keyDim, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(valueDim, 1);
        RetentionValidation.CheckDegree(degree);
        Batch = batch;
        Heads = heads;
        KeyDim = keyDim;
        ValueDim = valueDim;
        Degree = degree;
        long expanded = SymmetricPowerBasis.ExpandedDimOf(keyDim, degree);
        RetentionValidation.CheckStateFits(batch, heads, expanded, valueDim, "state");
        ExpandedDim = (int)expanded;
        if (headStates is null)
        {
            _heads = new HeadState[batch * heads];
            for (int i = 0; i < _heads.Length; i++)
            {
                _heads[i] = new HeadState(ExpandedDim, valueDim);
            }
        }
        else
        {
            if (headStates.Length != batch * heads)
            {
                throw new ArgumentException($"Expected {batch * heads} head states (batch {batch} x heads {heads}), got {headStates.Length}.", nameof(headStates));
            }

            for (int i = 0; i < headStates.Length; i++)
            {
                HeadState head = headStates[i];
                if (head.Normalizer.Length != ExpandedDim || head.Values.LongLength != (long)ExpandedDim * valueDim)
                {
                    throw new ArgumentException($"Head state {i} has D={head.Normalizer.Length} and {head.Values.LongLength} values; expected D={ExpandedDim} and {(long)ExpandedDim * valueDim} values (d={keyDim}, p={degree}, e={valueDim}).", nameof(headStates));
                }
            }

            _heads = headStates;
        }
    }

    /// <summary>Batch size b.</summary>
    public int Batch { get; }

    /// <summary>Key/value heads h.</summary>
    public int Heads { get; }

    /// <summary>Key dimension d.</summary>
    public int KeyDim { get; }

    /// <summary>Value dimension e.</summary>
    public int ValueDim { get; }

    /// <summary>Degree p.</summary>
    public int Degree { get; }

    /// <summary>Number of features D = C(d + p - 1, p).</summary>
    public int ExpandedDim { get; }

    /// <summary>Size of S and s together in bytes.</summary>
    public long SizeInBytes => (long)Batch * Heads * ExpandedDim * (ValueDim + 1) * sizeof(float);

    /// <summary>Returns the state of one (batch, head).</summary>
    public HeadState this[int batch, int head] => _heads[(batch * Heads) + head];

    /// <summary>Per-head states, batch-major.</summary>
    public IReadOnlyList<HeadState> HeadStates => _heads;

    /// <summary>Returns a deep copy.</summary>
    public RetentionState Clone() =>
        new(Batch, Heads, KeyDim, ValueDim, Degree, _heads.Select(h => h.Clone()).ToArray());

    /// <summary>Returns S as a (b, h, D, e) tensor and s as a (b, h, D) tensor, copied.</summary>
    public (Tensor Values, Tensor Normalizer) ToTensors()
    {
        long valuesPerHead = (long)ExpandedDim * ValueDim;
        var values = Tensor.Zeros(DataType.Float32, Batch, Heads, ExpandedDim, ValueDim);
        var normalizer = Tensor.Zeros(DataType.Float32, Batch, Heads, ExpandedDim);
        for (int i = 0; i < _heads.Length; i++)
        {
            values.Storage.Write(i * valuesPerHead, _heads[i].Values);
            normalizer.Storage.Write((long)i * ExpandedDim, _heads[i].Normalizer);
        }

        return (values, normalizer);
    }

    /// <summary>Builds a state from a (b, h, D, e) tensor S and a (b, h, D) tensor s.</summary>
    /// <exception cref="ArgumentException">The shapes do not match each other or d and p.</exception>
    public static RetentionState FromTensors(Tensor values, Tensor normalizer, int keyDim, int degree)
    {
        if (values.Rank != 4)
        {
            throw new ArgumentException($"State S must have shape (b, h, D, e); got {Tensor.FormatShape(values.Shape)}.", nameof(values));
        }

        int batch = values.Dim(0), heads = values.Dim(1), expanded = values.Dim(2), valueDim = values.Dim(3);
        long expected = SymmetricPowerBasis.ExpandedDimOf(keyDim, degree);
        if (expanded != expected)
        {
            throw new ArgumentException($"State S has D={expanded} but d={keyDim}, p={degree} gives D={expected}.", nameof(values));
        }

        if (normalizer.Rank != 3 || normalizer.Dim(0) != batch || normalizer.Dim(1) != heads || normalizer.Dim(2) != expanded)
        {
            throw new ArgumentException($"State normaliser s must have shape ({batch}, {heads}, {expanded}); got {Tensor.FormatShape(normalizer.Shape)}.", nameof(normalizer));
        }

        var heads2 = new HeadState[batch * heads];
        long valuesPerHead = (long)expanded * valueDim;
        for (int i = 0; i < heads2.Length; i++)
        {
            var s = new float[valuesPerHead];
            var z = new float[expanded];
            values.Storage.Read(i * valuesPerHead, s);
            normalizer.Storage.Read((long)i * expanded, z);
            heads2[i] = new HeadState(s, z);
        }

        return new RetentionState(batch, heads, keyDim, valueDim, degree, heads2);
    }
}
