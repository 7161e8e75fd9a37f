using System.Buffers;
using System.Runtime.InteropServices;
using MessagePack;
using PowerRetention.Kernels;

namespace PowerRetention.Grains;

/// <summary>
/// Encodes a session's record: one MessagePack map with string keys, written after every step.
/// <list type="bullet">
/// <item>"format" ("powerret-decode-session"), "version" (1);</item>
/// <item>"batch", "heads", "query_heads", "key_dim", "value_dim", "degree", "switch_over_seq_len"
/// (integers), "scale" (float32), "origin" (string), "position" (tokens stepped, int64);</item>
/// <item>"base_slot" (-1 for a zero state, else 0 or 1), "base_length", "base_hash" (uint64): the
/// storage slot that holds the base state as state file bytes (the format of
/// <see cref="Kernels.IO.StateFile"/>), which must have this length and XxHash64;</item>
/// <item>"cache_tokens" (n), "cache_keys" (b, n, h, d), "cache_values" (b, n, h, e) and
/// "cache_log_gates" (b, n, h): the tokens stepped since the base, each a bin of little-endian float32;</item>
/// <item>"last_step": nil, or a map of "id" (32 hex digits), "position", "data_type" (f32, f16 or
/// bf16), "shape" (array of integers) and "data" (bin), the last step's output;</item>
/// <item>"recent_steps": an array of [id, position] pairs, oldest first.</item>
/// </list>
/// The state itself is kept apart, in the base slot, and written only when the cache is folded into it.
/// </summary>
internal static partial class SessionRecordFormat
{
    /// <summary>Value of the "format" field.</summary>
    public const string FormatName = "powerret-decode-session";

    /// <summary>The format version this code writes and reads.</summary>
    public const int FormatVersion = 1;

    private const string FormatKey = "format";
    private const string VersionKey = "version";
    private const string BatchKey = "batch";
    private const string HeadsKey = "heads";
    private const string QueryHeadsKey = "query_heads";
    private const string KeyDimKey = "key_dim";
    private const string ValueDimKey = "value_dim";
    private const string DegreeKey = "degree";
    private const string ScaleKey = "scale";
    private const string SwitchOverKey = "switch_over_seq_len";
    private const string OriginKey = "origin";
    private const string PositionKey = "position";
    private const string BaseSlotKey = "base_slot";
    private const string BaseLengthKey = "base_length";
    private const string BaseHashKey = "base_hash";
    private const string CacheTokensKey = "cache_tokens";
    private const string CacheKeysKey = "cache_keys";
    private const string CacheValuesKey = "cache_values";
    private const string CacheLogGatesKey = "cache_log_gates";
    private const string LastStepKey = "last_step";
    private const string RecentStepsKey = "recent_steps";
    private const string StepIdKey = "id";
    private const string StepPositionKey = "position";
    private const string StepDataTypeKey = "data_type";
    private const string StepShapeKey = "shape";
    private const string StepDataKey = "data";
    private const int FieldCount = 21;

    /// <summary>Returns the record bytes of <paramref name="snapshot"/>, whose base must be stored already.</summary>
    /// <exception cref="InvalidOperationException">The snapshot has a base state without a storage slot.</exception>
    public static byte[] Encode(SessionSnapshot snapshot)
    {
        if (snapshot.Base is not null && snapshot.BaseStorage is null)
        {
            throw new InvalidOperationException("The session's base state must be stored before its record is encoded.");
        }

        SessionConfig config = snapshot.Config;
        var buffer = new ArrayBufferWriter<byte>(EstimateSize(snapshot));
        var writer = new MessagePackWriter(buffer);
        writer.WriteMapHeader(FieldCount);
        WriteField(ref writer, FormatKey, FormatName);
        WriteField(ref writer, VersionKey, FormatVersion);
        WriteField(ref writer, BatchKey, config.Batch);
        WriteField(ref writer, HeadsKey, config.Heads);
        WriteField(ref writer, QueryHeadsKey, config.QueryHeads);
        WriteField(ref writer, KeyDimKey, config.KeyDim);
        WriteField(ref writer, ValueDimKey, config.ValueDim);
        WriteField(ref writer, DegreeKey, config.Degree);
        writer.Write(ScaleKey);
        writer.Write(config.Scale);
        WriteField(ref writer, SwitchOverKey, config.SwitchOverSeqLen);
        WriteField(ref writer, OriginKey, snapshot.Origin);
        WriteField(ref writer, PositionKey, snapshot.Position);

        BaseReference? baseStorage = snapshot.Base is null ? null : snapshot.BaseStorage;
        WriteField(ref writer, BaseSlotKey, baseStorage?.Slot ?? -1);
        WriteField(ref writer, BaseLengthKey, baseStorage?.Length ?? 0);
        writer.Write(BaseHashKey);
        writer.Write(baseStorage?.Hash ?? 0UL);

        CachedTokens cache = snapshot.Cache;
        WriteField(ref writer, CacheTokensKey, cache.Count);
        WriteFloats(ref writer, CacheKeysKey, cache.Keys);
        WriteFloats(ref writer, CacheValuesKey, cache.Values);
        WriteFloats(ref writer, CacheLogGatesKey, cache.LogGates);

        writer.Write(LastStepKey);
        if (snapshot.LastStep is StepRecord last)
        {
            writer.WriteMapHeader(5);
            WriteField(ref writer, StepIdKey, last.StepId.ToString("N"));
            WriteField(ref writer, StepPositionKey, last.Position);
            WriteField(ref writer, StepDataTypeKey, last.Output.DataType.ShortName());
            writer.Write(StepShapeKey);
            writer.WriteArrayHeader(last.Output.Shape.Length);
            foreach (int dim in last.Output.Shape)
            {
                writer.Write(dim);
            }

            writer.Write(StepDataKey);
            writer.Write(last.Output.Data);
        }
        else
        {
            writer.WriteNil();
        }

        writer.Write(RecentStepsKey);
        writer.WriteArrayHeader(snapshot.RecentSteps.Count);
        foreach (StepMark mark in snapshot.RecentSteps)
        {
            writer.WriteArrayHeader(2);
            writer.Write(mark.StepId.ToString("N"));
            writer.Write(mark.Position);
        }

        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    private static int EstimateSize(SessionSnapshot snapshot)
    {
        long floats = (long)snapshot.Cache.Keys.Length + snapshot.Cache.Values.Length + snapshot.Cache.LogGates.Length;
        long output = snapshot.LastStep?.Output.Data.LongLength ?? 0;
        return (int)Math.Min(Array.MaxLength, (floats * sizeof(float)) + output + 1024 + (snapshot.RecentSteps.Count * 48L));
    }

    private static void WriteField(ref MessagePackWriter writer, string key, string value)
    {
        writer.Write(key);
        writer.Write(value);
    }

    private static void WriteField(ref MessagePackWriter writer, string key, long value)
    {
        writer.Write(key);
        writer.Write(value);
    }

    // NOTE: floats are copied in host byte order, so this assumes a little-endian host such as x64 or Arm64.
    private static void WriteFloats(ref MessagePackWriter writer, string key, float[] values)
    {
        writer.Write(key);
        writer.Write(MemoryMarshal.AsBytes(values.AsSpan()));
    }
}
