using System.Buffers;
using System.Globalization;
using System.Runtime.InteropServices;
using MessagePack;
using PowerRetention.Kernels;
using PowerRetention.Kernels.IO;

namespace PowerRetention.Grains;

// Decoding and validation of session records. SessionRecordFormat.cs describes the format.
internal static partial class SessionRecordFormat
{
    private static readonly string[] s_integerKeys =
        [VersionKey, BatchKey, HeadsKey, QueryHeadsKey, KeyDimKey, ValueDimKey, DegreeKey, SwitchOverKey, PositionKey, BaseSlotKey, BaseLengthKey, CacheTokensKey];

    /// <summary>
    /// Decodes and validates record bytes. The snapshot's <see cref="SessionSnapshot.Base"/> is null:
    /// the caller loads it from the slot that <see cref="SessionSnapshot.BaseStorage"/> names.
    /// </summary>
    /// <param name="data">The record bytes.</param>
    /// <param name="source">Names the record in error messages, such as the session id.</param>
    /// <exception cref="FileFormatException">The record is malformed, truncated, of another version, or a field is invalid; the message names the field.</exception>
    public static SessionSnapshot Decode(ReadOnlyMemory<byte> data, string source)
    {
        var reader = new MessagePackReader(data);
        try
        {
            RecordFields fields = ReadFields(ref reader, source);
            if (!reader.End)
            {
                throw new FileFormatException(source, $"{data.Length - reader.Consumed} bytes of trailing data follow the record, which ends after {reader.Consumed} bytes.");
            }

            return Build(fields, source);
        }
        catch (EndOfStreamException exception)
        {
            throw new FileFormatException(source, $"the record is truncated: it ends inside a MessagePack value after {reader.Consumed} of {data.Length} bytes.", exception);
        }
        catch (MessagePackSerializationException exception)
        {
            throw new FileFormatException(source, $"invalid MessagePack after {reader.Consumed} bytes: {exception.Message}", exception);
        }
    }

    private static RecordFields ReadFields(ref MessagePackReader reader, string source)
    {
        if (reader.NextMessagePackType != MessagePackType.Map)
        {
            throw new FileFormatException(source, $"not a {FormatName} record: it starts with a MessagePack {reader.NextMessagePackType}, expected a map.");
        }

        var fields = new RecordFields();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        int count = reader.ReadMapHeader();
        for (int i = 0; i < count; i++)
        {
            string key = ReadString(ref reader, source, $"key {i}");
            if (!seen.Add(key))
            {
                throw new FileFormatException(source, $"field '{key}' appears twice.");
            }

            switch (key)
            {
                case FormatKey:
                    fields.Format = ReadString(ref reader, source, key);
                    break;
                case OriginKey:
                    fields.Origin = ReadString(ref reader, source, key);
                    break;
                case ScaleKey:
                    fields.Scale = ReadFloat(ref reader, source, key);
                    break;
                case BaseHashKey:
                    fields.BaseHash = ReadUnsigned(ref reader, source, key);
                    break;
                case CacheKeysKey:
                case CacheValuesKey:
                case CacheLogGatesKey:
                    fields.Bins[key] = ReadBin(ref reader, source, key);
                    break;
                case LastStepKey:
                    fields.LastStepSeen = true;
                    fields.LastStep = reader.TryReadNil() ? null : ReadLastStep(ref reader, source);
                    break;
                case RecentStepsKey:
                    fields.RecentSteps = ReadRecentSteps(ref reader, source);
                    break;
                default:
                    if (!s_integerKeys.Contains(key))
                    {
                        throw new FileFormatException(source, $"field '{key}' is not a field of this format.");
                    }

                    fields.Integers[key] = ReadInteger(ref reader, source, key);
                    break;
            }
        }

        return fields;
    }

    private static SessionSnapshot Build(RecordFields fields, string source)
    {
        if (fields.Format is null)
        {
            throw new FileFormatException(source, $"not a {FormatName} record: it has no '{FormatKey}' field.");
        }

        if (fields.Format != FormatName)
        {
            throw new FileFormatException(source, $"not a {FormatName} record: field '{FormatKey}' is '{fields.Format}'.");
        }

        long version = Require(fields, source, VersionKey);
        if (version != FormatVersion)
        {
            throw new FileFormatException(source, $"unsupported record version {version} in field '{VersionKey}'. This reader supports version {FormatVersion}.");
        }

        SessionConfig config = BuildConfig(fields, source);
        long position = Require(fields, source, PositionKey);
        if (position < 0)
        {
            throw new FileFormatException(source, $"field '{PositionKey}' is {position}, but it must not be negative.");
        }

        BaseReference? baseStorage = BuildBase(fields, source);
        CachedTokens cache = BuildCache(fields, source, config, position);
        string origin = fields.Origin ?? throw Missing(source, OriginKey);
        if (!fields.LastStepSeen)
        {
            throw Missing(source, LastStepKey);
        }

        StepRecord? last = fields.LastStep is null ? null : BuildLastStep(fields.LastStep, source, config, position);
        IReadOnlyList<StepMark> recent = fields.RecentSteps ?? throw Missing(source, RecentStepsKey);
        if (recent.Count > SessionSnapshot.RecentStepLimit)
        {
            throw new FileFormatException(source, $"field '{RecentStepsKey}' has {recent.Count} entries, more than the limit of {SessionSnapshot.RecentStepLimit}.");
        }

        return new SessionSnapshot(config, origin, position, null, baseStorage, cache, last, recent);
    }

    private static SessionConfig BuildConfig(RecordFields fields, string source)
    {
        int batch = RequirePositive(fields, source, BatchKey);
        int heads = RequirePositive(fields, source, HeadsKey);
        int queryHeads = RequirePositive(fields, source, QueryHeadsKey);
        int keyDim = RequirePositive(fields, source, KeyDimKey);
        int valueDim = RequirePositive(fields, source, ValueDimKey);
        int switchOver = RequirePositive(fields, source, SwitchOverKey);
        int degree = RequirePositive(fields, source, DegreeKey);
        if (degree < 2 || degree % 2 != 0)
        {
            throw new FileFormatException(source, $"field '{DegreeKey}' is {degree}, but the degree must be even and at least 2.");
        }

        if (queryHeads % heads != 0)
        {
            throw new FileFormatException(source, $"field '{QueryHeadsKey}' is {queryHeads}, not a multiple of field '{HeadsKey}' {heads}.");
        }

        float scale = fields.Scale ?? throw Missing(source, ScaleKey);
        if (!float.IsFinite(scale) || scale <= 0f)
        {
            throw new FileFormatException(source, $"field '{ScaleKey}' is {scale.ToString(CultureInfo.InvariantCulture)}, but the scale must be finite and positive.");
        }

        try
        {
            RetentionValidation.CheckStateFits(batch, heads, SymmetricPowerBasis.ExpandedDimOf(keyDim, degree), valueDim, $"state of {source}");
        }
        catch (InsufficientMemoryException exception)
        {
            throw new FileFormatException(source, $"fields '{BatchKey}', '{HeadsKey}', '{KeyDimKey}', '{ValueDimKey}' and '{DegreeKey}' describe a state that does not fit: {exception.Message}", exception);
        }

        return new SessionConfig(batch, heads, queryHeads, keyDim, valueDim, degree, scale, switchOver);
    }

    private static BaseReference? BuildBase(RecordFields fields, string source)
    {
        long slot = Require(fields, source, BaseSlotKey);
        long length = Require(fields, source, BaseLengthKey);
        ulong hash = fields.BaseHash ?? throw Missing(source, BaseHashKey);
        if (slot == -1)
        {
            return null;
        }

        if (slot is not (0 or 1))
        {
            throw new FileFormatException(source, $"field '{BaseSlotKey}' is {slot}, but it must be -1 (zero state), 0 or 1.");
        }

        if (length < 1)
        {
            throw new FileFormatException(source, $"field '{BaseLengthKey}' is {length}, but a stored base state has at least 1 byte.");
        }

        return new BaseReference((int)slot, length, hash);
    }

    private static CachedTokens BuildCache(RecordFields fields, string source, SessionConfig config, long position)
    {
        long tokens = Require(fields, source, CacheTokensKey);
        if (tokens < 0 || tokens > config.SwitchOverSeqLen || tokens > position)
        {
            throw new FileFormatException(source, $"field '{CacheTokensKey}' is {tokens}, but it must be between 0 and the smaller of '{SwitchOverKey}' {config.SwitchOverSeqLen} and '{PositionKey}' {position}.");
        }

        int count = (int)tokens;
        long rows = (long)config.Batch * count * config.Heads;
        float[] keys = Floats(fields, source, CacheKeysKey, rows * config.KeyDim, $"(b={config.Batch}, n={count}, h={config.Heads}, d={config.KeyDim})");
        float[] values = Floats(fields, source, CacheValuesKey, rows * config.ValueDim, $"(b={config.Batch}, n={count}, h={config.Heads}, e={config.ValueDim})");
        float[] gates = Floats(fields, source, CacheLogGatesKey, rows, $"(b={config.Batch}, n={count}, h={config.Heads})");
        return count == 0 ? CachedTokens.Empty : new CachedTokens(count, keys, values, gates);
    }

    private static float[] Floats(RecordFields fields, string source, string key, long expected, string shape)
    {
        byte[] bytes = fields.Bins.TryGetValue(key, out byte[]? found) ? found : throw Missing(source, key);
        if (bytes.LongLength != expected * sizeof(float))
        {
            throw new FileFormatException(source, $"field '{key}' has {bytes.LongLength} bytes, but float32 {shape} needs {expected * sizeof(float)}.");
        }

        var values = new float[expected];
        bytes.AsSpan().CopyTo(MemoryMarshal.AsBytes(values.AsSpan()));
        return values;
    }

    private static StepRecord BuildLastStep(LastStepFields step, string source, SessionConfig config, long position)
    {
        string field = $"{LastStepKey}.";
        Guid id = ParseStepId(source, field + StepIdKey, step.Id ?? throw Missing(source, field + StepIdKey));
        long stepPosition = step.Position ?? throw Missing(source, field + StepPositionKey);
        DataType dataType;
        try
        {
            dataType = DataTypeExtensions.Parse(step.DataType ?? throw Missing(source, field + StepDataTypeKey));
        }
        catch (ArgumentException exception)
        {
            throw new FileFormatException(source, $"field '{field}{StepDataTypeKey}' is '{step.DataType}': {exception.Message}", exception);
        }

        int[] shape = step.Shape ?? throw Missing(source, field + StepShapeKey);
        byte[] data = step.Data ?? throw Missing(source, field + StepDataKey);
        if (shape.Length != 4 || shape[0] != config.Batch || shape[1] < 1 || shape[2] != config.QueryHeads || shape[3] != config.ValueDim)
        {
            throw new FileFormatException(source, $"field '{field}{StepShapeKey}' is {Tensor.FormatShape(shape)}, but the output of a step has shape (b={config.Batch}, n >= 1, hq={config.QueryHeads}, e={config.ValueDim}).");
        }

        if (stepPosition != position)
        {
            throw new FileFormatException(source, $"field '{field}{StepPositionKey}' is {stepPosition}, but the last step must end at '{PositionKey}' {position}.");
        }

        long expected = Tensor.ElementCountOf(shape) * dataType.SizeInBytes();
        if (data.LongLength != expected)
        {
            throw new FileFormatException(source, $"field '{field}{StepDataKey}' has {data.LongLength} bytes, but {dataType.ShortName()} {Tensor.FormatShape(shape)} needs {expected}.");
        }

        return new StepRecord(id, stepPosition, new RawTensor(shape, dataType, data));
    }

    private static LastStepFields ReadLastStep(ref MessagePackReader reader, string source)
    {
        if (reader.NextMessagePackType != MessagePackType.Map)
        {
            throw new FileFormatException(source, $"field '{LastStepKey}' is a MessagePack {reader.NextMessagePackType}, expected nil or a map.");
        }

        var step = new LastStepFields();
        int count = reader.ReadMapHeader();
        for (int i = 0; i < count; i++)
        {
            string key = ReadString(ref reader, source, $"{LastStepKey} key {i}");
            string field = $"{LastStepKey}.{key}";
            switch (key)
            {
                case StepIdKey when step.Id is null:
                    step.Id = ReadString(ref reader, source, field);
                    break;
                case StepPositionKey when step.Position is null:
                    step.Position = ReadInteger(ref reader, source, field);
                    break;
                case StepDataTypeKey when step.DataType is null:
                    step.DataType = ReadString(ref reader, source, field);
                    break;
                case StepShapeKey when step.Shape is null:
                    step.Shape = ReadShape(ref reader, source, field);
                    break;
                case StepDataKey when step.Data is null:
                    step.Data = ReadBin(ref reader, source, field);
                    break;
                default:
                    throw new FileFormatException(source, $"field '{field}' appears twice or is not a field of this format.");
            }
        }

        return step;
    }

    private static int[] ReadShape(ref MessagePackReader reader, string source, string field)
    {
        if (reader.NextMessagePackType != MessagePackType.Array)
        {
            throw new FileFormatException(source, $"field '{field}' is a MessagePack {reader.NextMessagePackType}, expected an array of integers.");
        }

        var shape = new int[reader.ReadArrayHeader()];
        for (int i = 0; i < shape.Length; i++)
        {
            long dim = ReadInteger(ref reader, source, $"{field}[{i}]");
            if (dim < 0 || dim > int.MaxValue)
            {
                throw new FileFormatException(source, $"field '{field}[{i}]' is {dim}, not a valid dimension.");
            }

            shape[i] = (int)dim;
        }

        return shape;
    }

    private static StepMark[] ReadRecentSteps(ref MessagePackReader reader, string source)
    {
        if (reader.NextMessagePackType != MessagePackType.Array)
        {
            throw new FileFormatException(source, $"field '{RecentStepsKey}' is a MessagePack {reader.NextMessagePackType}, expected an array.");
        }

        var marks = new StepMark[reader.ReadArrayHeader()];
        for (int i = 0; i < marks.Length; i++)
        {
            string field = $"{RecentStepsKey}[{i}]";
            if (reader.NextMessagePackType != MessagePackType.Array || reader.ReadArrayHeader() != 2)
            {
                throw new FileFormatException(source, $"field '{field}' is not an array [id, position].");
            }

            Guid id = ParseStepId(source, field, ReadString(ref reader, source, field));
            marks[i] = new StepMark(id, ReadInteger(ref reader, source, field));
        }

        return marks;
    }

    private static Guid ParseStepId(string source, string field, string text) =>
        Guid.TryParseExact(text, "N", out Guid id) ? id : throw new FileFormatException(source, $"field '{field}' is '{text}', not 32 hex digits.");

    private static string ReadString(ref MessagePackReader reader, string source, string field)
    {
        if (reader.NextMessagePackType != MessagePackType.String)
        {
            throw new FileFormatException(source, $"field '{field}' is a MessagePack {reader.NextMessagePackType}, expected a string.");
        }

        return reader.ReadString()!;
    }

    private static long ReadInteger(ref MessagePackReader reader, string source, string field)
    {
        if (reader.NextMessagePackType != MessagePackType.Integer)
        {
            throw new FileFormatException(source, $"field '{field}' is a MessagePack {reader.NextMessagePackType}, expected an integer.");
        }

        if (reader.NextCode == MessagePackCode.UInt64)
        {
            ulong value = reader.ReadUInt64();
            return value <= long.MaxValue ? (long)value : throw new FileFormatException(source, $"field '{field}' is {value}, more than the maximum of {long.MaxValue}.");
        }

        return reader.ReadInt64();
    }

    private static ulong ReadUnsigned(ref MessagePackReader reader, string source, string field)
    {
        if (reader.NextMessagePackType != MessagePackType.Integer)
        {
            throw new FileFormatException(source, $"field '{field}' is a MessagePack {reader.NextMessagePackType}, expected an integer.");
        }

        return reader.ReadUInt64();
    }

    private static float ReadFloat(ref MessagePackReader reader, string source, string field)
    {
        if (reader.NextMessagePackType != MessagePackType.Float)
        {
            throw new FileFormatException(source, $"field '{field}' is a MessagePack {reader.NextMessagePackType}, expected a float.");
        }

        return reader.ReadSingle();
    }

    private static byte[] ReadBin(ref MessagePackReader reader, string source, string field)
    {
        if (reader.NextMessagePackType != MessagePackType.Binary)
        {
            throw new FileFormatException(source, $"field '{field}' is a MessagePack {reader.NextMessagePackType}, expected bin.");
        }

        return reader.ReadBytes()!.Value.ToArray();
    }

    private static long Require(RecordFields fields, string source, string key) =>
        fields.Integers.TryGetValue(key, out long value) ? value : throw Missing(source, key);

    private static int RequirePositive(RecordFields fields, string source, string key)
    {
        long value = Require(fields, source, key);
        if (value < 1 || value > int.MaxValue)
        {
            throw new FileFormatException(source, $"field '{key}' is {value}, but it must be between 1 and {int.MaxValue}.");
        }

        return (int)value;
    }

    private static FileFormatException Missing(string source, string key) => new(source, $"the record has no '{key}' field.");

    private sealed class RecordFields
    {
        public string? Format { get; set; }

        public string? Origin { get; set; }

        public float? Scale { get; set; }

        public ulong? BaseHash { get; set; }

        public Dictionary<string, long> Integers { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, byte[]> Bins { get; } = new(StringComparer.Ordinal);

        public bool LastStepSeen { get; set; }

        public LastStepFields? LastStep { get; set; }

        public StepMark[]? RecentSteps { get; set; }
    }

    private sealed class LastStepFields
    {
        public string? Id { get; set; }

        public long? Position { get; set; }

        public string? DataType { get; set; }

        public int[]? Shape { get; set; }

        public byte[]? Data { get; set; }
    }
}
