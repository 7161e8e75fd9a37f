namespace PowerRetention.Kernels.IO;

/// <summary>The header of a retention state file: format version and the sizes of the state.</summary>
/// <param name="Version">Format version, 1 for files this code writes.</param>
/// <param name="Degree">Degree p, even and at least 2.</param>
/// <param name="KeyDim">Key dimension d.</param>
/// <param name="ValueDim">Value dimension e.</param>
/// <param name="ExpandedDim">Number of features D = C(d + p - 1, p).</param>
/// <param name="Heads">Key/value heads h.</param>
/// <param name="Batch">Batch size b.</param>
public sealed record StateFileHeader(int Version, int Degree, int KeyDim, int ValueDim, int ExpandedDim, int Heads, int Batch)
{
    /// <summary>Bytes of float32 data in S and s over all b x h heads, without MessagePack framing.</summary>
    /// <exception cref="OverflowException">The sizes need more than <see cref="long.MaxValue"/> bytes.</exception>
    public long PayloadBytes => checked((long)Batch * Heads * ExpandedDim * (ValueDim + 1L) * sizeof(float));
}
