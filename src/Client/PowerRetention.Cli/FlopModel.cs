using PowerRetention.Kernels;

namespace PowerRetention.Cli;

/// <summary>
/// The floating-point operation count that <c>powerret bench</c> divides by the time to report GFLOP/s.
/// It is a model of the chunked algorithm, not a count of the instructions the kernels execute.
/// </summary>
internal static class FlopModel
{
    /// <summary>Returns the chunk size the computation uses: min(chunk, t), or t for chunk size 0.</summary>
    public static int EffectiveChunkSize(int chunkSize, int time) =>
        chunkSize == 0 ? time : Math.Min(chunkSize, time);

    /// <summary>
    /// Counts the operations of one computation. Per query token-head: in-chunk attention (d + e)(c + 1)
    /// and the state query 2De + 2D. Per key/value token-head: the state update 2De + D. D = C(d + p - 1, p)
    /// and c is <see cref="EffectiveChunkSize"/>. With hq = h this is (d + e)(c + 1) + 4De + 3D per token-head.
    /// </summary>
    public static double Count(int batch, int time, int heads, int queryHeads, int keyDim, int valueDim, int degree, int chunkSize)
    {
        double expanded = SymmetricPowerBasis.ExpandedDimOf(keyDim, degree);
        double chunk = EffectiveChunkSize(chunkSize, time);
        double perQueryTokenHead = ((keyDim + valueDim) * (chunk + 1)) + (2 * expanded * valueDim) + (2 * expanded);
        double perKeyTokenHead = (2 * expanded * valueDim) + expanded;
        double tokens = (double)batch * time;
        return tokens * ((queryHeads * perQueryTokenHead) + (heads * perKeyTokenHead));
    }
}
