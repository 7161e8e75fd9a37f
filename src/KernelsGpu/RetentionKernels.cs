using ILGPU;

namespace PowerRetention.Kernels.Gpu;

/// <summary>
/// Sizes and strides of C = A B + Beta C, all matrices row-major float32 addressed through strides,
/// so that a transposed operand needs no copy: A(i, k) = a[i * ARowStride + k * AColumnStride].
/// </summary>
internal struct GemmShape
{
    public int Rows;
    public int Columns;
    public int Inner;
    public int ARowStride;
    public int AColumnStride;
    public int BRowStride;
    public int BColumnStride;
    public int CRowStride;

    /// <summary>Factor on the old C; 0 overwrites C without reading it, so stale NaNs never leak in.</summary>
    public float Beta;
}

/// <summary>Which features and tokens an embedding launch computes, and where it writes them.</summary>
internal struct EmbedShape
{
    public int FirstFeature;
    public int Features;
    public int Tokens;
    public int Dim;
    public int Degree;

    /// <summary>Distance between the rows of the output block, one row per feature.</summary>
    public int OutputRowStride;

    /// <summary>1 multiplies each feature by its multinomial coefficient (phiK); 0 leaves it out (phiQ).</summary>
    public int WithCoefficients;
}

/// <summary>Sizes of the attention weight step over one L x L block of scores.</summary>
internal struct WeightShape
{
    public int Tokens;
    public int RowStride;
    public float Scale;
    public int Degree;

    /// <summary>1 when the problem has log-gates, so w[i, j] is also multiplied by exp(g_i - g_j).</summary>
    public int Gated;
}

/// <summary>
/// The device kernels of <see cref="GpuBackend"/>, written once for every ILGPU accelerator. All of
/// them are explicitly grouped: the element kernels walk their outputs with a grid-stride loop, so a
/// launch can use one group on the CPU accelerator (where each group costs milliseconds) and
/// thousands on a GPU. Sums are accumulated in float32.
/// </summary>
internal static class RetentionKernels
{
    /// <summary>Edge of the square tiles of <see cref="GemmTiled"/>.</summary>
    public const int Tile = 16;

    /// <summary>
    /// Computes C = A B + Beta C with one thread per output element and no shared memory.
    /// Each thread reads its row of A and column of B straight from global memory.
    /// </summary>
    public static void GemmSimple(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape shape)
    {
        int total = shape.Rows * shape.Columns;
        int stride = Grid.DimX * Group.DimX;
        for (int index = Grid.GlobalIndex.X; index < total; index += stride)
        {
            int row = index / shape.Columns;
            int column = index - (row * shape.Columns);
            float sum = 0f;
            for (int k = 0; k < shape.Inner; k++)
            {
                sum += a[(row * shape.ARowStride) + (k * shape.AColumnStride)] * b[(k * shape.BRowStride) + (column * shape.BColumnStride)];
            }

            int target = (row * shape.CRowStride) + column;
            c[target] = shape.Beta == 0f ? sum : sum + (shape.Beta * c[target]);
        }
    }

    /// <summary>
    /// Computes C = A B + Beta C by square tiles: group (x, y) owns rows 16x .. 16x + 15 and columns
    /// 16y .. 16y + 15 of C, stages 16 x 16 blocks of A and B in shared memory and keeps its partial
    /// sums in shared memory, so any group size up to 256 works (the CPU accelerator allows 16).
    /// NOTE: this kernel has not been timed on a GPU. A faster version keeps a 64 x 64 tile in
    /// registers, 4 x 4 outputs per thread, and loads its tiles with vector instructions.
    /// </summary>
    public static void GemmTiled(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape shape)
    {
        ArrayView<float> tileA = SharedMemory.Allocate<float>(Tile * Tile);
        ArrayView<float> tileB = SharedMemory.Allocate<float>(Tile * Tile);
        ArrayView<float> sums = SharedMemory.Allocate<float>(Tile * Tile);
        int firstRow = Grid.IdxX * Tile;
        int firstColumn = Grid.IdxY * Tile;
        int thread = Group.IdxX;
        int threads = Group.DimX;

        for (int cell = thread; cell < Tile * Tile; cell += threads)
        {
            sums[cell] = 0f;
        }

        for (int k0 = 0; k0 < shape.Inner; k0 += Tile)
        {
            // Cell (r, k) of the A tile is A(firstRow + r, k0 + k). Cell (k, col) of the B tile is B(k0 + k, firstColumn + col).
            for (int cell = thread; cell < Tile * Tile; cell += threads)
            {
                int r = cell / Tile;
                int k = cell - (r * Tile);
                int row = firstRow + r;
                int inner = k0 + k;
                tileA[cell] = row < shape.Rows && inner < shape.Inner ? a[(row * shape.ARowStride) + (inner * shape.AColumnStride)] : 0f;
                int innerB = k0 + r;
                int column = firstColumn + k;
                tileB[cell] = innerB < shape.Inner && column < shape.Columns ? b[(innerB * shape.BRowStride) + (column * shape.BColumnStride)] : 0f;
            }

            Group.Barrier();
            for (int cell = thread; cell < Tile * Tile; cell += threads)
            {
                int r = cell / Tile;
                int column = cell - (r * Tile);
                float sum = 0f;
                for (int k = 0; k < Tile; k++)
                {
                    sum += tileA[(r * Tile) + k] * tileB[(k * Tile) + column];
                }

                sums[cell] += sum;
            }

            Group.Barrier();
        }

        for (int cell = thread; cell < Tile * Tile; cell += threads)
        {
            int row = firstRow + (cell / Tile);
            int column = firstColumn + (cell % Tile);
            if (row < shape.Rows && column < shape.Columns)
            {
                int target = (row * shape.CRowStride) + column;
                c[target] = shape.Beta == 0f ? sums[cell] : sums[cell] + (shape.Beta * c[target]);
            }
        }
    }

    /// <summary>
    /// Writes features FirstFeature .. FirstFeature + Features - 1 of the symmetric power embedding of
    /// each token row x_i, scaled by rowFactors[i], to output[f * OutputRowStride + i]. Feature f is the
    /// product of x_i[indices[f * p + r]] * rowFactors[i] over r, times its multinomial coefficient for keys.
    /// </summary>
    public static void Embed(ArrayView<float> rows, ArrayView<float> rowFactors, ArrayView<int> indices, ArrayView<float> coefficients, ArrayView<float> output, EmbedShape shape)
    {
        int total = shape.Features * shape.Tokens;
        int stride = Grid.DimX * Group.DimX;
        for (int index = Grid.GlobalIndex.X; index < total; index += stride)
        {
            int f = index / shape.Tokens;
            int token = index - (f * shape.Tokens);
            int feature = shape.FirstFeature + f;
            float factor = rowFactors[token];
            float product = shape.WithCoefficients != 0 ? coefficients[feature] : 1f;
            for (int r = 0; r < shape.Degree; r++)
            {
                product *= rows[(token * shape.Dim) + indices[(feature * shape.Degree) + r]] * factor;
            }

            output[(f * shape.OutputRowStride) + token] = product;
        }
    }

    /// <summary>
    /// Turns raw scores q_i . k_j into attention weights in place: (Scale s)^p, times exp(g_i - g_j)
    /// when gated, and 0 above the diagonal (j &gt; i).
    /// </summary>
    public static void Weights(ArrayView<float> scores, ArrayView<float> gates, WeightShape shape)
    {
        int total = shape.Tokens * shape.Tokens;
        int stride = Grid.DimX * Group.DimX;
        for (int index = Grid.GlobalIndex.X; index < total; index += stride)
        {
            int i = index / shape.Tokens;
            int j = index - (i * shape.Tokens);
            int target = (i * shape.RowStride) + j;
            float weight = 0f;
            if (j <= i)
            {
                float t = scores[target] * shape.Scale;
                float t2 = t * t;
                weight = t2;
                for (int power = 2; power < shape.Degree; power += 2)
                {
                    weight *= t2;
                }

                if (shape.Gated != 0)
                {
                    // g is non-increasing along the chunk, so g_i - g_j <= 0 for j <= i; the clamp guards rounding.
                    weight *= MathF.Exp(MathF.Min(gates[i] - gates[j], 0f));
                }
            }

            scores[target] = weight;
        }
    }
}
