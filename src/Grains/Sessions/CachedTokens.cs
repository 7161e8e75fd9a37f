using PowerRetention.Kernels;

namespace PowerRetention.Grains;

/// <summary>
/// The keys, values and log-gates of the tokens a session's decode state holds in its cache, in
/// float32: keys (b, n, h, d), values (b, n, h, e) and log-gates (b, n, h), zero without gating.
/// Never modified after creation, so a committed snapshot can share it.
/// </summary>
internal sealed class CachedTokens
{
    public CachedTokens(int count, float[] keys, float[] values, float[] logGates)
    {
        Count = count;
        Keys = keys;
        Values = values;
        LogGates = logGates;
    }

    public static CachedTokens Empty { get; } = new(0, [], [], []);

    /// <summary>Tokens in the cache.</summary>
    public int Count { get; }

    public float[] Keys { get; }

    public float[] Values { get; }

    public float[] LogGates { get; }

    /// <summary>Returns a new cache holding these tokens followed by tokens [start, end) of a step's K, V and log_G.</summary>
    public CachedTokens Append(SessionConfig config, Tensor k, Tensor v, Tensor? logG, int start, int end)
    {
        int added = end - start;
        int count = Count + added;
        int steps = k.Dim(1);
        int keyRow = config.Heads * config.KeyDim;
        int valueRow = config.Heads * config.ValueDim;
        int gateRow = config.Heads;
        var keys = new float[(long)config.Batch * count * keyRow];
        var values = new float[(long)config.Batch * count * valueRow];
        var gates = new float[(long)config.Batch * count * gateRow];
        for (int batch = 0; batch < config.Batch; batch++)
        {
            long kept = (long)batch * Count;
            long target = (long)batch * count;
            long source = ((long)batch * steps) + start;
            Keys.AsSpan(checked((int)(kept * keyRow)), Count * keyRow).CopyTo(keys.AsSpan(checked((int)(target * keyRow))));
            Values.AsSpan(checked((int)(kept * valueRow)), Count * valueRow).CopyTo(values.AsSpan(checked((int)(target * valueRow))));
            LogGates.AsSpan(checked((int)(kept * gateRow)), Count * gateRow).CopyTo(gates.AsSpan(checked((int)(target * gateRow))));

            k.Storage.Read(source * keyRow, keys.AsSpan(checked((int)((target + Count) * keyRow)), added * keyRow));
            v.Storage.Read(source * valueRow, values.AsSpan(checked((int)((target + Count) * valueRow)), added * valueRow));
            logG?.Storage.Read(source * gateRow, gates.AsSpan(checked((int)((target + Count) * gateRow)), added * gateRow));
        }

        return new CachedTokens(count, keys, values, gates);
    }

    /// <summary>
    /// Steps these tokens through <paramref name="decode"/> with zero queries and drops the outputs,
    /// which leaves its cache as it was when the tokens were first stepped: queries never enter the cache.
    /// </summary>
    public void Replay(SessionConfig config, DecodeState decode)
    {
        if (Count == 0)
        {
            return;
        }

        Tensor queries = Tensor.Zeros(DataType.Float32, config.Batch, Count, config.QueryHeads, config.KeyDim);
        decode.Step(
            queries,
            Tensor.FromArray(Keys, config.Batch, Count, config.Heads, config.KeyDim),
            Tensor.FromArray(Values, config.Batch, Count, config.Heads, config.ValueDim),
            Tensor.FromArray(LogGates, config.Batch, Count, config.Heads));
    }
}
