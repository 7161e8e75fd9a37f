using System.Runtime.InteropServices;
using PowerRetention.Kernels;

namespace PowerRetention.Grains;

/// <summary>Cuts per-head states into <see cref="StateBlock"/>s and puts them back together.</summary>
internal static class StateTransfer
{
    /// <summary>Floats per block: 16 MiB, well under Orleans' default 100 MiB message body limit.</summary>
    public const int BlockFloats = 1 << 22;

    public static IEnumerable<StateBlock> Split(StateRole role, int segment, int attempt, IReadOnlyList<HeadState> heads)
    {
        for (int unit = 0; unit < heads.Count; unit++)
        {
            foreach (StateBlock block in SplitArray(role, segment, attempt, unit, normalizer: false, heads[unit].Values))
            {
                yield return block;
            }

            foreach (StateBlock block in SplitArray(role, segment, attempt, unit, normalizer: true, heads[unit].Normalizer))
            {
                yield return block;
            }
        }
    }

    public static void Apply(StateBlock block, HeadState[] heads)
    {
        HeadState head = heads[block.Unit];
        float[] target = block.IsNormalizer ? head.Normalizer : head.Values;
        ReadOnlySpan<float> values = MemoryMarshal.Cast<byte, float>(block.Data);
        values.CopyTo(target.AsSpan(checked((int)block.Offset), values.Length));
        head.IsZero = false;
    }

    public static HeadState[] Zeros(int units, int expandedDim, int valueDim)
    {
        var heads = new HeadState[units];
        for (int i = 0; i < units; i++)
        {
            heads[i] = new HeadState(expandedDim, valueDim);
        }

        return heads;
    }

    public static long SizeInBytes(IReadOnlyList<HeadState> heads) =>
        heads.Sum(h => ((long)h.Values.Length + h.Normalizer.Length) * sizeof(float));

    private static IEnumerable<StateBlock> SplitArray(StateRole role, int segment, int attempt, int unit, bool normalizer, float[] values)
    {
        for (long offset = 0; offset < values.LongLength; offset += BlockFloats)
        {
            int count = (int)Math.Min(BlockFloats, values.LongLength - offset);
            byte[] data = MemoryMarshal.AsBytes(values.AsSpan((int)offset, count)).ToArray();
            yield return new StateBlock(role, segment, attempt, unit, normalizer, offset, data);
        }
    }
}
