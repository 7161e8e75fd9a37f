using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using PowerRetention.Kernels;
using PowerRetention.Kernels.Gpu;
using PowerRetention.KernelsGpu.Tests.Support;

namespace PowerRetention.KernelsGpu.Tests;

/// <summary>Each device kernel on ILGPU's CPU accelerator against a direct host computation.</summary>
public sealed class KernelTests : IDisposable
{
    private readonly Context _context;
    private readonly Accelerator _accelerator;

    public KernelTests()
    {
        _context = Context.Create(builder => builder.CPU().EnableAlgorithms());
        _accelerator = CPUDevice.Default.CreateCPUAccelerator(_context);
    }

    [Theory]
    [InlineData(false, 0f)]
    [InlineData(false, 0.5f)]
    [InlineData(true, 0f)]
    [InlineData(true, 0.5f)]
    public void Gemm_MatchesHostProduct(bool tiled, float beta)
    {
        // A is 19 x 21, read transposed from a 21 x 19 array. B is 21 x 18 and C has a row stride of 20,
        // so the products cross every tile edge and use both stride patterns.
        const int rows = 19, columns = 18, inner = 21, cStride = 20;
        float[] a = Sequence(inner * rows, 0.37);
        float[] b = Sequence(inner * columns, 0.61);
        float[] c = Sequence(rows * cStride, 0.13);
        var kernels = new KernelSet(_accelerator, tiled);
        var shape = new GemmShape
        {
            Rows = rows,
            Columns = columns,
            Inner = inner,
            ARowStride = 1,
            AColumnStride = rows,
            BRowStride = columns,
            BColumnStride = 1,
            CRowStride = cStride,
            Beta = beta,
        };

        float[] actual = RunGemm(kernels, a, b, c, shape);

        float[] expected = (float[])c.Clone();
        for (int i = 0; i < rows; i++)
        {
            for (int j = 0; j < columns; j++)
            {
                double sum = 0;
                for (int k = 0; k < inner; k++)
                {
                    sum += (double)a[(k * rows) + i] * b[(k * columns) + j];
                }

                int target = (i * cStride) + j;
                expected[target] = (float)(sum + (beta * (double)c[target]));
            }
        }

        Measure.Within(actual, expected, 1e-6, tiled ? "tiled product" : "simple product");
    }

    [Fact]
    public void Gemm_ZeroBetaIgnoresNaN()
    {
        var kernels = new KernelSet(_accelerator, tiled: false);
        var shape = new GemmShape { Rows = 2, Columns = 2, Inner = 1, ARowStride = 1, AColumnStride = 1, BRowStride = 2, BColumnStride = 1, CRowStride = 2, Beta = 0f };

        float[] actual = RunGemm(kernels, [1f, 2f], [3f, 4f], [float.NaN, float.NaN, float.NaN, float.NaN], shape);

        Assert.Equal([3f, 4f, 6f, 8f], actual);
    }

    [Theory]
    [InlineData(5, 2, false)]
    [InlineData(5, 2, true)]
    [InlineData(3, 4, true)]
    [InlineData(4, 6, false)]
    public void Embed_MatchesBasis(int dim, int degree, bool withCoefficients)
    {
        const int tokens = 7;
        var basis = SymmetricPowerBasis.Get(dim, degree);
        float[] rows = Sequence(tokens * dim, 0.71);
        float[] factors = Sequence(tokens, 0.29).Select(x => 1f + x).ToArray();
        int firstFeature = basis.ExpandedDim / 3;
        int features = basis.ExpandedDim - firstFeature;
        const int outputStride = tokens + 2;
        var kernels = new KernelSet(_accelerator, tiled: false);
        using MemoryBuffer1D<float, Stride1D.Dense> rowBuffer = _accelerator.Allocate1D(rows);
        using MemoryBuffer1D<float, Stride1D.Dense> factorBuffer = _accelerator.Allocate1D(factors);
        using BasisBuffers basisBuffers = BasisBuffers.Upload(_accelerator, basis);
        using MemoryBuffer1D<float, Stride1D.Dense> output = _accelerator.Allocate1D<float>(features * outputStride);
        var shape = new EmbedShape
        {
            FirstFeature = firstFeature,
            Features = features,
            Tokens = tokens,
            Dim = dim,
            Degree = degree,
            OutputRowStride = outputStride,
            WithCoefficients = withCoefficients ? 1 : 0,
        };

        kernels.Embed(_accelerator.DefaultStream, rowBuffer.View, factorBuffer.View, basisBuffers.Indices.View, basisBuffers.Coefficients.View, output.View, shape);
        float[] actual = output.GetAsArray1D();

        var expected = new float[basis.ExpandedDim];
        var scaled = new float[dim];
        for (int token = 0; token < tokens; token++)
        {
            for (int a = 0; a < dim; a++)
            {
                scaled[a] = rows[(token * dim) + a] * factors[token];
            }

            if (withCoefficients)
            {
                basis.EmbedKey(scaled, expected);
            }
            else
            {
                basis.EmbedQuery(scaled, expected);
            }

            for (int f = 0; f < features; f++)
            {
                float value = actual[(f * outputStride) + token];
                Assert.True(Math.Abs(value - expected[firstFeature + f]) <= 1e-5 * Math.Max(1, Math.Abs(expected[firstFeature + f])), $"feature {firstFeature + f} of token {token}: {value} != {expected[firstFeature + f]}");
            }
        }
    }

    [Theory]
    [InlineData(2, false)]
    [InlineData(4, true)]
    public void Weights_MatchFormula(int degree, bool gated)
    {
        const int tokens = 6, stride = 8;
        const float scale = 0.7f;
        float[] scores = Sequence(tokens * stride, 0.43).Select(x => (x * 4f) - 2f).ToArray();
        float[] gates = [-0.1f, -0.4f, -0.45f, -1.2f, -1.3f, -2f];
        var kernels = new KernelSet(_accelerator, tiled: false);
        using MemoryBuffer1D<float, Stride1D.Dense> scoreBuffer = _accelerator.Allocate1D(scores);
        using MemoryBuffer1D<float, Stride1D.Dense> gateBuffer = _accelerator.Allocate1D(gates);
        var shape = new WeightShape { Tokens = tokens, RowStride = stride, Scale = scale, Degree = degree, Gated = gated ? 1 : 0 };

        kernels.Weights(_accelerator.DefaultStream, scoreBuffer.View, gateBuffer.View, shape);
        float[] actual = scoreBuffer.GetAsArray1D();

        for (int i = 0; i < tokens; i++)
        {
            for (int j = 0; j < tokens; j++)
            {
                double expected = j > i ? 0 : Math.Pow(scale * scores[(i * stride) + j], degree) * (gated ? Math.Exp(gates[i] - gates[j]) : 1);
                Assert.True(Math.Abs(actual[(i * stride) + j] - expected) <= 1e-6 * Math.Max(1, Math.Abs(expected)), $"w[{i}, {j}] = {actual[(i * stride) + j]}, expected {expected}");
            }

            Assert.Equal(scores[(i * stride) + tokens], actual[(i * stride) + tokens]);
        }
    }

    public void Dispose()
    {
        _accelerator.Dispose();
        _context.Dispose();
    }

    private float[] RunGemm(KernelSet kernels, float[] a, float[] b, float[] c, GemmShape shape)
    {
        using MemoryBuffer1D<float, Stride1D.Dense> aBuffer = _accelerator.Allocate1D(a);
        using MemoryBuffer1D<float, Stride1D.Dense> bBuffer = _accelerator.Allocate1D(b);
        using MemoryBuffer1D<float, Stride1D.Dense> cBuffer = _accelerator.Allocate1D(c);
        kernels.Gemm(_accelerator.DefaultStream, aBuffer.View, bBuffer.View, cBuffer.View, shape);
        return cBuffer.GetAsArray1D();
    }

    // Deterministic values in [0, 1): the fractional parts of i * step.
    private static float[] Sequence(int length, double step) =>
        Enumerable.Range(1, length).Select(i => (float)((i * step) % 1.0)).ToArray();
}
