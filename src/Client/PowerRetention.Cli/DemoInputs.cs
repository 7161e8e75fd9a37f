using PowerRetention.Kernels;
using PowerRetention.Kernels.IO;

namespace PowerRetention.Cli;

/// <summary>
/// Writes the demo's synthetic inputs straight into a .safetensors file, block by block, so that a million
/// tokens never need the whole tensors in memory.
/// </summary>
internal static class DemoInputs
{
    /// <summary>Tokens generated per block; each block draws from its own seeded generator.</summary>
    public const int BlockTokens = 8192;

    /// <summary>
    /// Writes tensors q (1, t, h, d), k (1, t, h, d), v (1, t, h, d) in bf16 and log_g (1, t, h) in float32 with the
    /// distributions of <see cref="SyntheticInputs.Create"/>. Block n of <see cref="BlockTokens"/> tokens is
    /// <c>SyntheticInputs.Create</c> with seed <paramref name="seed"/> + n, so equal arguments give equal files.
    /// </summary>
    /// <param name="path">The .safetensors file; it appears under this name only once complete.</param>
    /// <param name="tokens">Sequence length t.</param>
    /// <param name="heads">Heads h, for queries and keys alike.</param>
    /// <param name="dim">Key and value dimension d.</param>
    /// <param name="seed">Seed of the first block.</param>
    /// <param name="threads">Blocks generated at once; null means one per core.</param>
    /// <param name="progress">Receives token-heads written so far, from any thread.</param>
    /// <param name="cancellationToken">Stops writing; the partial file is deleted.</param>
    public static void Write(string path, int tokens, int heads, int dim, int seed, int? threads, IProgress<long> progress, CancellationToken cancellationToken)
    {
        int[] tokenShape = [1, tokens, heads, dim];
        using SafetensorsPendingFile file = SafetensorsFile.Create(path,
        [
            ("q", DataType.BFloat16, tokenShape),
            ("k", DataType.BFloat16, tokenShape),
            ("v", DataType.BFloat16, tokenShape),
            ("log_g", DataType.Float32, [1, tokens, heads]),
        ]);

        int blocks = (int)(((long)tokens + BlockTokens - 1) / BlockTokens);
        long done = 0;
        var parallel = new ParallelOptions { CancellationToken = cancellationToken, MaxDegreeOfParallelism = threads ?? -1 };
        Parallel.For(0, blocks, parallel, block =>
        {
            int start = block * BlockTokens;
            int count = Math.Min(BlockTokens, tokens - start);
            RetentionInputs inputs = SyntheticInputs.Create(1, count, heads, dim, gating: true, seed: seed + block, dataType: DataType.BFloat16);
            long tokenElements = (long)heads * dim;
            CopyInto(inputs.Q, file["q"], start * tokenElements);
            CopyInto(inputs.K, file["k"], start * tokenElements);
            CopyInto(inputs.V, file["v"], start * tokenElements);
            CopyInto(inputs.LogG!, file["log_g"], (long)start * heads);
            progress.Report(Interlocked.Add(ref done, (long)count * heads));
        });

        file.Commit();
    }

    // bf16 to float32 and back is exact, so the file contains the generated values bit for bit.
    private static void CopyInto(Tensor source, Tensor destination, long offset)
    {
        var values = new float[source.ElementCount];
        source.Storage.Read(0, values);
        destination.Storage.Write(offset, values);
    }
}
