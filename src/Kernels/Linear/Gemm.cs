using System.Diagnostics;
using System.Numerics;
using System.Runtime.CompilerServices;

namespace PowerRetention.Kernels.Linear;

/// <summary>
/// Single-threaded float32 matrix multiply-accumulate, C += A * B, with B and C row-major and A read
/// through arbitrary strides so that both A and its transpose can be multiplied without a copy.
/// </summary>
/// <remarks>
/// The vector width is <see cref="Vector{T}"/>.Count, chosen once by the runtime (8 floats on AVX2).
/// The micro-kernel keeps a 4 x 2W tile of C in registers: 8 accumulators, 2 row loads of B and one
/// broadcast of A per step, which fits the 16 vector registers of AVX2 without spilling. The methods are
/// compiled fully optimised on first call whatever the host's tiered compilation settings.
/// </remarks>
internal static unsafe class Gemm
{
    private const int TileRows = 4;

    /// <summary>
    /// C[i, j] += sum over l of A[i * aRowStride + l * aColStride] * B[l * ldb + j], for i &lt; m, j &lt; n, l &lt; k.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MultiplyAdd(int m, int n, int k, float* a, int aRowStride, int aColStride, float* b, int ldb, float* c, int ldc)
    {
        Debug.Assert(m >= 0 && n >= 0 && k >= 0);
        if (m == 0 || n == 0 || k == 0)
        {
            return;
        }

        int width = Vector<float>.Count;
        int vectorColumns = Vector.IsHardwareAccelerated ? n / width * width : 0;
        int pairColumns = vectorColumns / (2 * width) * (2 * width);

        int i = 0;
        for (; i + TileRows <= m; i += TileRows)
        {
            float* aRow = a + ((long)i * aRowStride);
            float* cRow = c + ((long)i * ldc);
            int j = 0;
            for (; j < pairColumns; j += 2 * width)
            {
                Tile4x2(k, aRow, aRowStride, aColStride, b + j, ldb, cRow + j, ldc);
            }

            for (; j < vectorColumns; j += width)
            {
                Tile4x1(k, aRow, aRowStride, aColStride, b + j, ldb, cRow + j, ldc);
            }

            if (j < n)
            {
                ScalarBlock(TileRows, n - j, k, aRow, aRowStride, aColStride, b + j, ldb, cRow + j, ldc);
            }
        }

        for (; i < m; i++)
        {
            float* aRow = a + ((long)i * aRowStride);
            float* cRow = c + ((long)i * ldc);
            int j = 0;
            for (; j < vectorColumns; j += width)
            {
                Tile1x1(k, aRow, aColStride, b + j, ldb, cRow + j);
            }

            if (j < n)
            {
                ScalarBlock(1, n - j, k, aRow, aRowStride, aColStride, b + j, ldb, cRow + j, ldc);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector<float> Load(float* p) => Unsafe.ReadUnaligned<Vector<float>>(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* p, Vector<float> value) => Unsafe.WriteUnaligned(p, value);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile4x2(int k, float* a, int ars, int acs, float* b, int ldb, float* c, int ldc)
    {
        int width = Vector<float>.Count;
        float* c1 = c + ldc;
        float* c2 = c1 + ldc;
        float* c3 = c2 + ldc;
        Vector<float> c00 = Load(c), c01 = Load(c + width);
        Vector<float> c10 = Load(c1), c11 = Load(c1 + width);
        Vector<float> c20 = Load(c2), c21 = Load(c2 + width);
        Vector<float> c30 = Load(c3), c31 = Load(c3 + width);
        float* a0 = a;
        float* a1 = a + ars;
        float* a2 = a1 + ars;
        float* a3 = a2 + ars;
        for (int l = 0; l < k; l++)
        {
            Vector<float> b0 = Load(b);
            Vector<float> b1 = Load(b + width);
            b += ldb;

            var x = new Vector<float>(*a0);
            c00 = Vector.FusedMultiplyAdd(x, b0, c00);
            c01 = Vector.FusedMultiplyAdd(x, b1, c01);
            x = new Vector<float>(*a1);
            c10 = Vector.FusedMultiplyAdd(x, b0, c10);
            c11 = Vector.FusedMultiplyAdd(x, b1, c11);
            x = new Vector<float>(*a2);
            c20 = Vector.FusedMultiplyAdd(x, b0, c20);
            c21 = Vector.FusedMultiplyAdd(x, b1, c21);
            x = new Vector<float>(*a3);
            c30 = Vector.FusedMultiplyAdd(x, b0, c30);
            c31 = Vector.FusedMultiplyAdd(x, b1, c31);
            a0 += acs;
            a1 += acs;
            a2 += acs;
            a3 += acs;
        }

        Store(c, c00);
        Store(c + width, c01);
        Store(c1, c10);
        Store(c1 + width, c11);
        Store(c2, c20);
        Store(c2 + width, c21);
        Store(c3, c30);
        Store(c3 + width, c31);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile4x1(int k, float* a, int ars, int acs, float* b, int ldb, float* c, int ldc)
    {
        float* c1 = c + ldc;
        float* c2 = c1 + ldc;
        float* c3 = c2 + ldc;
        Vector<float> c0v = Load(c), c1v = Load(c1), c2v = Load(c2), c3v = Load(c3);
        for (int l = 0; l < k; l++)
        {
            Vector<float> b0 = Load(b);
            b += ldb;
            float* al = a + ((long)l * acs);
            c0v = Vector.FusedMultiplyAdd(new Vector<float>(al[0]), b0, c0v);
            c1v = Vector.FusedMultiplyAdd(new Vector<float>(al[ars]), b0, c1v);
            c2v = Vector.FusedMultiplyAdd(new Vector<float>(al[2 * ars]), b0, c2v);
            c3v = Vector.FusedMultiplyAdd(new Vector<float>(al[3 * ars]), b0, c3v);
        }

        Store(c, c0v);
        Store(c1, c1v);
        Store(c2, c2v);
        Store(c3, c3v);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile1x1(int k, float* a, int acs, float* b, int ldb, float* c)
    {
        Vector<float> acc = Load(c);
        for (int l = 0; l < k; l++)
        {
            acc = Vector.FusedMultiplyAdd(new Vector<float>(a[(long)l * acs]), Load(b), acc);
            b += ldb;
        }

        Store(c, acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ScalarBlock(int rows, int columns, int k, float* a, int ars, int acs, float* b, int ldb, float* c, int ldc)
    {
        for (int r = 0; r < rows; r++)
        {
            for (int j = 0; j < columns; j++)
            {
                float sum = c[((long)r * ldc) + j];
                for (int l = 0; l < k; l++)
                {
                    sum = MathF.FusedMultiplyAdd(a[((long)r * ars) + ((long)l * acs)], b[((long)l * ldb) + j], sum);
                }

                c[((long)r * ldc) + j] = sum;
            }
        }
    }
}
