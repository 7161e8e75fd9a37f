using System.Runtime.InteropServices;
using PowerRetention.Kernels;

namespace PowerRetention.Grains;

/// <summary>Reads a completed job's final state from its coordinator grain, one block at a time.</summary>
internal static class JobStateReader
{
    /// <exception cref="InvalidOperationException">The job was not started, is not completed, or was not asked to return its final state.</exception>
    public static async Task<RetentionState> ReadAsync(IJobGrain job)
    {
        int[] header = await job.GetFinalStateShapeAsync();
        int batch = header[0], heads = header[1], keyDim = header[2], valueDim = header[3], degree = header[4];
        int expanded = (int)SymmetricPowerBasis.ExpandedDimOf(keyDim, degree);
        var states = new HeadState[batch * heads];
        for (int unit = 0; unit < states.Length; unit++)
        {
            var values = new float[(long)expanded * valueDim];
            var normalizer = new float[expanded];
            await ReadArrayAsync(job, unit, normalizer: false, values);
            await ReadArrayAsync(job, unit, normalizer: true, normalizer);
            states[unit] = new HeadState(values, normalizer);
        }

        return new RetentionState(batch, heads, keyDim, valueDim, degree, states);
    }

    private static async Task ReadArrayAsync(IJobGrain job, int unit, bool normalizer, float[] target)
    {
        for (long offset = 0; offset < target.LongLength;)
        {
            StateBlock block = await job.ReadFinalStateAsync(unit, normalizer, offset, StateTransfer.BlockFloats)
                ?? throw new InvalidOperationException($"the final state of job {job.GetPrimaryKey()} ended early at unit {unit}, {(normalizer ? "s" : "S")} offset {offset} of {target.LongLength}.");
            ReadOnlySpan<float> received = MemoryMarshal.Cast<byte, float>(block.Data);
            if (received.Length == 0 || offset + received.Length > target.LongLength)
            {
                throw new InvalidOperationException($"the final state of job {job.GetPrimaryKey()} sent a block of {received.Length} floats at unit {unit}, offset {offset} of {target.LongLength}.");
            }

            received.CopyTo(target.AsSpan(checked((int)offset)));
            offset += received.Length;
        }
    }
}
