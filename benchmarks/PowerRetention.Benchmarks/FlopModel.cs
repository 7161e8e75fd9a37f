using PowerRetention.Kernels;

namespace PowerRetention.Benchmarks;

/// <summary>
/// Floating-point operations per token-head (an FMA counts two): in-chunk attention (d + e)(c + 1),
/// state update 2De + D and state query 2De + 2D, with D = C(d + p - 1, p).
/// </summary>
public static class FlopModel
{
    public static double Attention(int keyDim, int valueDim, int chunk) => (double)(keyDim + valueDim) * (chunk + 1);

    public static double Update(int keyDim, int valueDim, int degree) => (2.0 * Expanded(keyDim, degree) * valueDim) + Expanded(keyDim, degree);

    public static double Query(int keyDim, int valueDim, int degree) => (2.0 * Expanded(keyDim, degree) * valueDim) + (2.0 * Expanded(keyDim, degree));

    public static double Total(int keyDim, int valueDim, int degree, int chunk) =>
        Attention(keyDim, valueDim, chunk) + Update(keyDim, valueDim, degree) + Query(keyDim, valueDim, degree);

    private static double Expanded(int keyDim, int degree) => SymmetricPowerBasis.ExpandedDimOf(keyDim, degree);
}
