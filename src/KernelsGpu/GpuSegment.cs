using ILGPU;
using ILGPU.Runtime;
using FloatBuffer = ILGPU.Runtime.MemoryBuffer1D<float, ILGPU.Stride1D.Dense>;

namespace PowerRetention.Kernels.Gpu;

/// <summary>
/// Device and host buffers for one backend call on one (batch, key/value head), allocated once and
/// reused by every chunk of the segment, and the chunk steps that use them. The state lives on the
/// device for the whole call as one D x (e + 1) matrix [S | s]: values carry an extra column of ones,
/// so every product yields numerators and denominators (or S and s) together.
/// </summary>
internal sealed class GpuSegment : IDisposable
{
    // Largest block of embedded features held at once: 16 Mi floats, 64 MiB.
    private const long MaxFeatureBlockFloats = 16L << 20;

    private readonly RetentionProblem _problem;
    private readonly KernelSet _kernels;
    private readonly AcceleratorStream _stream;
    private readonly BasisBuffers _basis;
    private readonly int _chunk;
    private readonly int _keyDim;
    private readonly int _valueDim;
    private readonly int _width;
    private readonly int _group;
    private readonly int _expanded;
    private readonly int _featureBlock;

    private readonly FloatBuffer _queries;
    private readonly FloatBuffer _keys;
    private readonly FloatBuffer _values;
    private readonly FloatBuffer _gates;
    private readonly FloatBuffer _queryFactors;
    private readonly FloatBuffer _keyFactors;
    private readonly FloatBuffer? _scores;
    private readonly FloatBuffer? _outputs;
    private readonly FloatBuffer _features;
    private readonly FloatBuffer _state;

    private readonly float[] _hostQueries;
    private readonly float[] _hostKeys;
    private readonly float[] _hostValues;
    private readonly float[] _hostGates;
    private readonly float[] _hostQueryFactors;
    private readonly float[] _hostKeyFactors;
    private readonly float[] _hostOutputs;
    private readonly float[] _row;

    private bool _stateNonZero;

    /// <param name="withOutputs">Whether chunks compute outputs (attention and the state query) or only advance the state.</param>
    public GpuSegment(RetentionProblem problem, KernelSet kernels, BasisBuffers basis, bool withOutputs)
    {
        _problem = problem;
        _kernels = kernels;
        _basis = basis;
        _stream = kernels.Accelerator.DefaultStream;
        _chunk = problem.ChunkSize;
        _keyDim = problem.KeyDim;
        _valueDim = problem.ValueDim;
        _width = problem.ValueDim + 1;
        _group = problem.GroupSize;
        _expanded = problem.ExpandedDim;
        _featureBlock = (int)Math.Clamp(MaxFeatureBlockFloats / _chunk, 1, _expanded);

        Accelerator accelerator = kernels.Accelerator;
        _queries = Allocate(accelerator, withOutputs ? (long)_group * _chunk * _keyDim : 1);
        _keys = Allocate(accelerator, (long)_chunk * _keyDim);
        _values = Allocate(accelerator, (long)_chunk * _width);
        _gates = Allocate(accelerator, _chunk);
        _queryFactors = Allocate(accelerator, _chunk);
        _keyFactors = Allocate(accelerator, _chunk);
        _scores = withOutputs ? Allocate(accelerator, (long)_group * _chunk * _chunk) : null;
        _outputs = withOutputs ? Allocate(accelerator, (long)_group * _chunk * _width) : null;
        _features = Allocate(accelerator, (long)_featureBlock * _chunk);
        _state = Allocate(accelerator, (long)_expanded * _width);

        _hostQueries = new float[withOutputs ? _group * _chunk * _keyDim : 0];
        _hostKeys = new float[_chunk * _keyDim];
        _hostValues = new float[_chunk * _width];
        _hostGates = new float[_chunk];
        _hostQueryFactors = new float[_chunk];
        _hostKeyFactors = new float[_chunk];
        _hostOutputs = new float[withOutputs ? _group * _chunk * _width : 0];
        _row = new float[Math.Max(_keyDim, _valueDim)];
    }

    /// <summary>Copies <paramref name="state"/> to the device; a state known to be zero is cleared there instead.</summary>
    public void LoadState(HeadState state)
    {
        if (state.IsZero)
        {
            _state.View.MemSetToZero(_stream);
            _stateNonZero = false;
            return;
        }

        var packed = new float[(long)_expanded * _width];
        for (int f = 0; f < _expanded; f++)
        {
            state.Values.AsSpan(f * _valueDim, _valueDim).CopyTo(packed.AsSpan(f * _width, _valueDim));
            packed[(f * _width) + _valueDim] = state.Normalizer[f];
        }

        _state.View.CopyFromCPU(_stream, packed);
        _stateNonZero = true;
    }

    /// <summary>Returns a new host copy of the device state.</summary>
    public HeadState DownloadState()
    {
        if (!_stateNonZero)
        {
            return new HeadState(_expanded, _valueDim);
        }

        var packed = new float[(long)_expanded * _width];
        _state.View.CopyToCPU(_stream, packed);
        _stream.Synchronize();
        var values = new float[(long)_expanded * _valueDim];
        var normalizer = new float[_expanded];
        for (int f = 0; f < _expanded; f++)
        {
            packed.AsSpan(f * _width, _valueDim).CopyTo(values.AsSpan(f * _valueDim, _valueDim));
            normalizer[f] = packed[(f * _width) + _valueDim];
        }

        return new HeadState(values, normalizer);
    }

    /// <summary>
    /// Processes tokens [start, start + length) of (batch, kvHead): in-chunk attention and the state
    /// query into the output buffer when <paramref name="withOutputs"/>, then the state update when
    /// <paramref name="updateState"/>.
    /// </summary>
    /// <returns>The chunk's total log-decay g_last.</returns>
    public float ProcessChunk(int batch, int kvHead, int start, int length, bool withOutputs, bool updateState)
    {
        bool readState = withOutputs && _stateNonZero;
        float gLast = LoadGates(batch, kvHead, start, length);
        LoadKeysAndValues(batch, kvHead, start, length, gLast);
        if (withOutputs)
        {
            LoadQueries(batch, kvHead, start, length);
            Attend(length);
        }

        if (readState || updateState)
        {
            QueryAndUpdateState(length, readState, updateState, MathF.Exp(gLast));
        }

        if (updateState)
        {
            _stateNonZero = true;
        }

        return gLast;
    }

    /// <summary>Copies the last chunk's outputs back and writes y = numerator / denominator (0 where the denominator is 0).</summary>
    public void WriteNormalized(Tensor output, int batch, int kvHead, int start, int length)
    {
        RetentionProblem p = _problem;
        _outputs!.View.CopyToCPU(_stream, _hostOutputs);
        _stream.Synchronize();
        Span<float> row = _row.AsSpan(0, _valueDim);
        for (int r = 0; r < _group; r++)
        {
            int queryHead = (kvHead * _group) + r;
            for (int i = 0; i < length; i++)
            {
                int offset = ((r * _chunk) + i) * _width;
                float denominator = _hostOutputs[offset + _valueDim];

                // A row whose weights are all zero outputs zero, as on the CPU backend.
                if (denominator == 0f)
                {
                    row.Clear();
                }
                else
                {
                    float inverse = 1f / denominator;
                    for (int a = 0; a < _valueDim; a++)
                    {
                        row[a] = _hostOutputs[offset + a] * inverse;
                    }
                }

                output.Storage.Write(RowOffset(batch, p.Time, start + i, p.QueryHeads, queryHead, _valueDim), row);
            }
        }
    }

    public void Dispose()
    {
        _queries.Dispose();
        _keys.Dispose();
        _values.Dispose();
        _gates.Dispose();
        _queryFactors.Dispose();
        _keyFactors.Dispose();
        _scores?.Dispose();
        _outputs?.Dispose();
        _features.Dispose();
        _state.Dispose();
    }

    // In-chunk cumulative log-gate g relative to the chunk start, summed in double as on the CPU backend.
    private float LoadGates(int batch, int kvHead, int start, int length)
    {
        RetentionProblem p = _problem;
        if (p.LogG is null)
        {
            return 0f;
        }

        Span<float> one = stackalloc float[1];
        double sum = 0;
        for (int j = 0; j < length; j++)
        {
            p.LogG.Storage.Read(((((long)batch * p.Time) + start + j) * p.Heads) + kvHead, one);
            sum += one[0];
            _hostGates[j] = (float)sum;
        }

        _gates.View.SubView(0, length).CopyFromCPU(_stream, _hostGates.AsSpan(0, length));
        return _hostGates[length - 1];
    }

    // Keys as rows of d, values as rows of e followed by a 1, and each key's decay to the chunk end exp((g_last - g_j) / p).
    private void LoadKeysAndValues(int batch, int kvHead, int start, int length, float gLast)
    {
        RetentionProblem p = _problem;
        bool gated = p.LogG is not null;
        float inverseDegree = 1f / p.Degree;
        for (int j = 0; j < length; j++)
        {
            p.K.Storage.Read(RowOffset(batch, p.Time, start + j, p.Heads, kvHead, _keyDim), _hostKeys.AsSpan(j * _keyDim, _keyDim));
            p.V.Storage.Read(RowOffset(batch, p.Time, start + j, p.Heads, kvHead, _valueDim), _hostValues.AsSpan(j * _width, _valueDim));
            _hostValues[(j * _width) + _valueDim] = 1f;
            _hostKeyFactors[j] = gated ? MathF.Exp((gLast - _hostGates[j]) * inverseDegree) : 1f;
        }

        _keys.View.SubView(0, (long)length * _keyDim).CopyFromCPU(_stream, _hostKeys.AsSpan(0, length * _keyDim));
        _values.View.SubView(0, (long)length * _width).CopyFromCPU(_stream, _hostValues.AsSpan(0, length * _width));
        _keyFactors.View.SubView(0, length).CopyFromCPU(_stream, _hostKeyFactors.AsSpan(0, length));
    }

    // Queries of every head of the group, and the state-query factor scale exp(g_i / p): phiQ is
    // homogeneous of degree p, so phiQ(scale q exp(g / p)) = scale^p exp(g) phiQ(q).
    private void LoadQueries(int batch, int kvHead, int start, int length)
    {
        RetentionProblem p = _problem;
        bool gated = p.LogG is not null;
        float inverseDegree = 1f / p.Degree;
        for (int r = 0; r < _group; r++)
        {
            int queryHead = (kvHead * _group) + r;
            for (int i = 0; i < length; i++)
            {
                p.Q.Storage.Read(RowOffset(batch, p.Time, start + i, p.QueryHeads, queryHead, _keyDim), _hostQueries.AsSpan(((r * _chunk) + i) * _keyDim, _keyDim));
            }

            long offset = (long)r * _chunk * _keyDim;
            _queries.View.SubView(offset, (long)length * _keyDim).CopyFromCPU(_stream, _hostQueries.AsSpan((int)offset, length * _keyDim));
        }

        for (int i = 0; i < length; i++)
        {
            _hostQueryFactors[i] = p.Scale * (gated ? MathF.Exp(_hostGates[i] * inverseDegree) : 1f);
        }

        _queryFactors.View.SubView(0, length).CopyFromCPU(_stream, _hostQueryFactors.AsSpan(0, length));
    }

    // Numerators and denominators of the in-chunk causal sums: W = weights(Q K^T), then [num | den] = W [V | 1].
    private void Attend(int length)
    {
        for (int r = 0; r < _group; r++)
        {
            ArrayView<float> queries = _queries.View.SubView((long)r * _chunk * _keyDim, (long)_chunk * _keyDim);
            ArrayView<float> scores = _scores!.View.SubView((long)r * _chunk * _chunk, (long)_chunk * _chunk);
            ArrayView<float> outputs = _outputs!.View.SubView((long)r * _chunk * _width, (long)_chunk * _width);

            var scoreShape = new GemmShape
            {
                Rows = length,
                Columns = length,
                Inner = _keyDim,
                ARowStride = _keyDim,
                AColumnStride = 1,
                BRowStride = 1,
                BColumnStride = _keyDim,
                CRowStride = _chunk,
                Beta = 0f,
            };
            _kernels.Gemm(_stream, queries, _keys.View, scores, scoreShape);

            var weightShape = new WeightShape
            {
                Tokens = length,
                RowStride = _chunk,
                Scale = _problem.Scale,
                Degree = _problem.Degree,
                Gated = _problem.LogG is null ? 0 : 1,
            };
            _kernels.Weights(_stream, scores, _gates.View, weightShape);

            var sumShape = new GemmShape
            {
                Rows = length,
                Columns = _width,
                Inner = length,
                ARowStride = _chunk,
                AColumnStride = 1,
                BRowStride = _width,
                BColumnStride = 1,
                CRowStride = _width,
                Beta = 0f,
            };
            _kernels.Gemm(_stream, scores, _values.View, outputs, sumShape);
        }
    }

    // Goes over blocks of features so that no D x L embedding is held whole. Within a block the
    // queries read the state before the update changes it.
    private void QueryAndUpdateState(int length, bool readState, bool updateState, float decay)
    {
        for (int f0 = 0; f0 < _expanded; f0 += _featureBlock)
        {
            int features = Math.Min(_featureBlock, _expanded - f0);
            ArrayView<float> stateBlock = _state.View.SubView((long)f0 * _width, (long)features * _width);
            if (readState)
            {
                for (int r = 0; r < _group; r++)
                {
                    ArrayView<float> queries = _queries.View.SubView((long)r * _chunk * _keyDim, (long)_chunk * _keyDim);
                    ArrayView<float> outputs = _outputs!.View.SubView((long)r * _chunk * _width, (long)_chunk * _width);
                    EmbedBlock(queries, _queryFactors.View, f0, features, length, withCoefficients: false);

                    // [num | den] += phiQ^T [S | s]: A(i, f) = features[f, i].
                    var shape = new GemmShape
                    {
                        Rows = length,
                        Columns = _width,
                        Inner = features,
                        ARowStride = 1,
                        AColumnStride = _chunk,
                        BRowStride = _width,
                        BColumnStride = 1,
                        CRowStride = _width,
                        Beta = 1f,
                    };
                    _kernels.Gemm(_stream, _features.View, stateBlock, outputs, shape);
                }
            }

            if (updateState)
            {
                EmbedBlock(_keys.View, _keyFactors.View, f0, features, length, withCoefficients: true);

                // [S | s] = exp(g_last) [S | s] + phiK [V | 1].
                var shape = new GemmShape
                {
                    Rows = features,
                    Columns = _width,
                    Inner = length,
                    ARowStride = _chunk,
                    AColumnStride = 1,
                    BRowStride = _width,
                    BColumnStride = 1,
                    CRowStride = _width,
                    Beta = decay,
                };
                _kernels.Gemm(_stream, _features.View, _values.View, stateBlock, shape);
            }
        }
    }

    private void EmbedBlock(ArrayView<float> rows, ArrayView<float> rowFactors, int firstFeature, int features, int length, bool withCoefficients)
    {
        var shape = new EmbedShape
        {
            FirstFeature = firstFeature,
            Features = features,
            Tokens = length,
            Dim = _keyDim,
            Degree = _problem.Degree,
            OutputRowStride = _chunk,
            WithCoefficients = withCoefficients ? 1 : 0,
        };
        _kernels.Embed(_stream, rows, rowFactors, _basis.Indices.View, _basis.Coefficients.View, _features.View, shape);
    }

    private static FloatBuffer Allocate(Accelerator accelerator, long length) => accelerator.Allocate1D<float>(Math.Max(length, 1));

    // Offset of element [b, t, head, 0] in a (b, t, heads, dim) tensor.
    private static long RowOffset(int batch, int time, int token, int headCount, int head, int dim) =>
        ((((long)batch * time) + token) * headCount + head) * dim;
}

/// <summary>The embedding tables of one (d, p) on the device: feature indices and key coefficients.</summary>
internal sealed class BasisBuffers(MemoryBuffer1D<int, Stride1D.Dense> indices, FloatBuffer coefficients) : IDisposable
{
    public MemoryBuffer1D<int, Stride1D.Dense> Indices { get; } = indices;

    public FloatBuffer Coefficients { get; } = coefficients;

    public static BasisBuffers Upload(Accelerator accelerator, SymmetricPowerBasis basis)
    {
        MemoryBuffer1D<int, Stride1D.Dense> indices = accelerator.Allocate1D(basis.Indices);
        FloatBuffer coefficients = accelerator.Allocate1D(basis.KeyCoefficients);
        return new BasisBuffers(indices, coefficients);
    }

    public void Dispose()
    {
        Indices.Dispose();
        Coefficients.Dispose();
    }
}
