using ILGPU;
using ILGPU.Runtime;

namespace PowerRetention.Kernels.Gpu;

/// <summary>
/// The kernels of <see cref="RetentionKernels"/> compiled for one accelerator, with the launch
/// sizes that suit it. Loading compiles each kernel once (PTX on CUDA), so a backend keeps one set.
/// </summary>
internal sealed class KernelSet
{
    private const int GpuGroupSize = 256;

    // A grid-stride launch needs no more groups than this to fill a GPU; more only add scheduling.
    private const int MaxGpuGroups = 65_535;

    private readonly Accelerator _accelerator;
    private readonly bool _onCpu;
    private readonly int _groupSize;
    private readonly Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape> _gemmSimple;
    private readonly Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape> _gemmTiled;
    private readonly Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, EmbedShape> _embed;
    private readonly Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, WeightShape> _weights;

    public KernelSet(Accelerator accelerator, bool tiled)
    {
        _accelerator = accelerator;
        _onCpu = accelerator.AcceleratorType == AcceleratorType.CPU;
        _groupSize = Math.Min(GpuGroupSize, accelerator.MaxNumThreadsPerGroup);
        Tiled = tiled;
        _gemmSimple = accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape>(RetentionKernels.GemmSimple);
        _gemmTiled = accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape>(RetentionKernels.GemmTiled);
        _embed = accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, EmbedShape>(RetentionKernels.Embed);
        _weights = accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, WeightShape>(RetentionKernels.Weights);
    }

    /// <summary>Whether matrix products use the shared-memory tiled kernel instead of one thread per output.</summary>
    public bool Tiled { get; }

    /// <summary>Computes C = A B + Beta C on <paramref name="stream"/>.</summary>
    /// <remarks>
    /// NOTE: cuBLAS (cublasGemmEx through P/Invoke to libcublas.so) belongs here for the state products,
    /// which are most of the work. It is not called because no machine here has a GPU to test it on.
    /// </remarks>
    public void Gemm(AcceleratorStream stream, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape shape)
    {
        if (shape.Rows == 0 || shape.Columns == 0)
        {
            return;
        }

        if (Tiled)
        {
            int rowTiles = (shape.Rows + RetentionKernels.Tile - 1) / RetentionKernels.Tile;
            int columnTiles = (shape.Columns + RetentionKernels.Tile - 1) / RetentionKernels.Tile;
            var config = new KernelConfig(new Index3D(rowTiles, columnTiles, 1), new Index3D(_groupSize, 1, 1));
            _gemmTiled(stream, config, a, b, c, shape);
        }
        else
        {
            _gemmSimple(stream, ElementConfig((long)shape.Rows * shape.Columns), a, b, c, shape);
        }
    }

    /// <summary>Writes a block of embedded features; see <see cref="RetentionKernels.Embed"/>.</summary>
    public void Embed(AcceleratorStream stream, ArrayView<float> rows, ArrayView<float> rowFactors, ArrayView<int> indices, ArrayView<float> coefficients, ArrayView<float> output, EmbedShape shape) =>
        _embed(stream, ElementConfig((long)shape.Features * shape.Tokens), rows, rowFactors, indices, coefficients, output, shape);

    /// <summary>Turns scores into attention weights in place; see <see cref="RetentionKernels.Weights"/>.</summary>
    public void Weights(AcceleratorStream stream, ArrayView<float> scores, ArrayView<float> gates, WeightShape shape) =>
        _weights(stream, ElementConfig((long)shape.Tokens * shape.Tokens), scores, gates, shape);

    /// <summary>The accelerator the kernels were compiled for.</summary>
    public Accelerator Accelerator => _accelerator;

    // One group on the CPU accelerator, where every group costs a thread hand-off; enough groups for
    // one element per thread (capped) on a GPU.
    private KernelConfig ElementConfig(long elements)
    {
        int groups = _onCpu ? 1 : (int)Math.Clamp((elements + _groupSize - 1) / _groupSize, 1, MaxGpuGroups);
        return new KernelConfig(groups, _groupSize);
    }
}
