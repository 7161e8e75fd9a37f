using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using MessagePack;

namespace PowerRetention.Kernels.IO;

// Decoding and validation of state files. StateFile.cs describes the format.
public static partial class StateFile
{
    private static MappedRegion OpenMapped(string path)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"{path}: file not found.", path);
        }

        return MappedRegion.Open(path, writable: false);
    }

    private static (StateFileHeader Header, RetentionState? State) Decode(ReadOnlySequence<byte> data, string source, bool headerOnly)
    {
        var reader = new MessagePackReader(data);
        try
        {
            StateFileHeader header = ReadHeaderMap(ref reader, source);
            if (headerOnly)
            {
                return (header, null);
            }

            return (header, ReadHeads(ref reader, source, header));
        }
        catch (EndOfStreamException exception)
        {
            throw new FileFormatException(source, $"the data is truncated: it ends inside a MessagePack value after {reader.Consumed} of {data.Length} bytes.", exception);
        }
        catch (MessagePackSerializationException exception)
        {
            throw new FileFormatException(source, $"invalid MessagePack after {reader.Consumed} bytes: {exception.Message}", exception);
        }
    }

    private static StateFileHeader ReadHeaderMap(ref MessagePackReader reader, string source)
    {
        if (reader.NextMessagePackType != MessagePackType.Array)
        {
            throw new FileFormatException(source, $"not a {FormatName} file: it starts with a MessagePack {reader.NextMessagePackType}, expected an array.");
        }

        int rootCount = reader.ReadArrayHeader();
        if (rootCount != 2)
        {
            throw new FileFormatException(source, $"not a {FormatName} file: the top-level array has {rootCount} elements, expected 2 (header and heads).");
        }

        if (reader.NextMessagePackType != MessagePackType.Map)
        {
            throw new FileFormatException(source, $"not a {FormatName} file: the header is a MessagePack {reader.NextMessagePackType}, expected a map.");
        }

        string? format = null;
        var integers = new Dictionary<string, long>(StringComparer.Ordinal);
        int fieldCount = reader.ReadMapHeader();
        for (int i = 0; i < fieldCount; i++)
        {
            if (reader.NextMessagePackType != MessagePackType.String)
            {
                throw new FileFormatException(source, $"header key {i} is a MessagePack {reader.NextMessagePackType}, expected a string.");
            }

            string key = reader.ReadString()!;
            if (key == FormatKey && format is null)
            {
                format = ReadStringField(ref reader, source, key);
            }
            else if (s_integerKeys.Contains(key) && !integers.ContainsKey(key))
            {
                integers[key] = ReadIntegerField(ref reader, source, key);
            }
            else
            {
                string problem = key == FormatKey || integers.ContainsKey(key) ? "appears twice" : "is not a field of this format";
                throw new FileFormatException(source, $"header field '{key}' {problem}.");
            }
        }

        return ValidateHeader(source, format, integers);
    }

    private static string ReadStringField(ref MessagePackReader reader, string source, string key)
    {
        if (reader.NextMessagePackType != MessagePackType.String)
        {
            throw new FileFormatException(source, $"not a {FormatName} file: header field '{key}' is a MessagePack {reader.NextMessagePackType}, expected a string.");
        }

        return reader.ReadString()!;
    }

    private static long ReadIntegerField(ref MessagePackReader reader, string source, string key)
    {
        if (reader.NextMessagePackType != MessagePackType.Integer)
        {
            throw new FileFormatException(source, $"header field '{key}' is a MessagePack {reader.NextMessagePackType}, expected an integer.");
        }

        if (reader.NextCode == MessagePackCode.UInt64)
        {
            ulong value = reader.ReadUInt64();
            if (value > long.MaxValue)
            {
                throw new FileFormatException(source, $"header field '{key}' is {value}, more than the maximum of {int.MaxValue}.");
            }

            return (long)value;
        }

        return reader.ReadInt64();
    }

    private static StateFileHeader ValidateHeader(string source, string? format, Dictionary<string, long> integers)
    {
        if (format is null)
        {
            throw new FileFormatException(source, $"not a {FormatName} file: the header has no '{FormatKey}' field.");
        }

        if (format != FormatName)
        {
            throw new FileFormatException(source, $"not a {FormatName} file: header field '{FormatKey}' is '{format}'.");
        }

        long version = RequireInteger(source, integers, VersionKey);
        if (version != FormatVersion)
        {
            throw new FileFormatException(source, $"unsupported format version {version} in header field '{VersionKey}'. This reader supports version {FormatVersion}.");
        }

        long degreeValue = RequireInteger(source, integers, DegreeKey);
        if (degreeValue < 2 || degreeValue % 2 != 0 || degreeValue > int.MaxValue)
        {
            throw new FileFormatException(source, $"header field '{DegreeKey}' is {degreeValue}, but the degree must be even, at least 2 and at most {int.MaxValue}.");
        }

        int degree = (int)degreeValue;

        int keyDim = RequirePositive(source, integers, KeyDimKey);
        int valueDim = RequirePositive(source, integers, ValueDimKey);
        int expandedDim = RequirePositive(source, integers, ExpandedDimKey);
        int heads = RequirePositive(source, integers, HeadsKey);
        int batch = RequirePositive(source, integers, BatchKey);

        long expected = SymmetricPowerBasis.ExpandedDimOf(keyDim, degree);
        if (expandedDim != expected)
        {
            string expectedText = expected == long.MaxValue ? "more than 2^63" : expected.ToString(System.Globalization.CultureInfo.InvariantCulture);
            throw new FileFormatException(source, $"header field '{ExpandedDimKey}' is {expandedDim}, but key_dim {keyDim} and degree {degree} give D = C(d + p - 1, p) = {expectedText}.");
        }

        if ((long)batch * heads > Array.MaxLength)
        {
            throw new FileFormatException(source, $"header fields '{BatchKey}' {batch} and '{HeadsKey}' {heads} give {(long)batch * heads} heads, more than the maximum array length of {Array.MaxLength}.");
        }

        var header = new StateFileHeader((int)version, degree, keyDim, valueDim, expandedDim, heads, batch);
        try
        {
            _ = header.PayloadBytes;
        }
        catch (OverflowException)
        {
            throw new FileFormatException(source, $"the header sizes (b={batch}, h={heads}, D={expandedDim}, e={valueDim}) need more than 2^63 bytes of data.");
        }

        return header;
    }

    private static long RequireInteger(string source, Dictionary<string, long> integers, string key) =>
        integers.TryGetValue(key, out long value) ? value : throw new FileFormatException(source, $"the header has no '{key}' field.");

    private static int RequirePositive(string source, Dictionary<string, long> integers, string key)
    {
        long value = RequireInteger(source, integers, key);
        if (value < 1)
        {
            throw new FileFormatException(source, $"header field '{key}' is {value}, but it must be a positive integer.");
        }

        if (value > int.MaxValue)
        {
            throw new FileFormatException(source, $"header field '{key}' is {value}, more than the maximum of {int.MaxValue}.");
        }

        return (int)value;
    }

    private static RetentionState ReadHeads(ref MessagePackReader reader, string source, StateFileHeader header)
    {
        // Checked before any allocation, so a small file cannot make the reader allocate a huge state.
        long remaining = reader.Sequence.Length - reader.Consumed;
        if (remaining < header.PayloadBytes)
        {
            throw new FileFormatException(source, $"the data is truncated: b={header.Batch}, h={header.Heads}, D={header.ExpandedDim}, e={header.ValueDim} need {header.PayloadBytes} bytes of float32 data, but only {remaining} bytes follow the header.");
        }

        RetentionValidation.CheckStateFits(header.Batch, header.Heads, header.ExpandedDim, header.ValueDim, $"state in {source}");

        int expectedHeads = header.Batch * header.Heads;
        if (reader.NextMessagePackType != MessagePackType.Array)
        {
            throw new FileFormatException(source, $"the heads element is a MessagePack {reader.NextMessagePackType}, expected an array.");
        }

        int headCount = reader.ReadArrayHeader();
        if (headCount != expectedHeads)
        {
            throw new FileFormatException(source, $"the file contains {headCount} heads, but the header declares batch {header.Batch} x heads {header.Heads} = {expectedHeads}.");
        }

        var heads = new HeadState[headCount];
        for (int i = 0; i < headCount; i++)
        {
            string name = $"head {i} (batch {i / header.Heads}, head {i % header.Heads})";
            heads[i] = ReadHead(ref reader, source, name, header);
        }

        if (!reader.End)
        {
            long trailing = reader.Sequence.Length - reader.Consumed;
            throw new FileFormatException(source, $"{trailing} bytes of trailing data follow the state, which ends after {reader.Consumed} bytes.");
        }

        return new RetentionState(header.Batch, header.Heads, header.KeyDim, header.ValueDim, header.Degree, heads);
    }

    private static HeadState ReadHead(ref MessagePackReader reader, string source, string name, StateFileHeader header)
    {
        ExpectArray(ref reader, source, name, 2, "[S, s]");

        long valueCount = (long)header.ExpandedDim * header.ValueDim;
        var values = new float[valueCount];
        if (reader.NextMessagePackType != MessagePackType.Array)
        {
            throw new FileFormatException(source, $"S of {name} is a MessagePack {reader.NextMessagePackType}, expected an array of bin chunks.");
        }

        int chunkCount = reader.ReadArrayHeader();
        long filled = 0;
        for (int chunk = 0; chunk < chunkCount; chunk++)
        {
            string element = $"S chunk {chunk} of {name}";
            ReadOnlySequence<byte> bytes = ReadBin(ref reader, source, element);
            if (bytes.Length % sizeof(float) != 0)
            {
                throw new FileFormatException(source, $"{element} has {bytes.Length} bytes, not a whole number of float32 values.");
            }

            long count = bytes.Length / sizeof(float);
            if (filled + count > valueCount)
            {
                throw new FileFormatException(source, $"S of {name} has more than the expected D x e x 4 = {header.ExpandedDim} x {header.ValueDim} x 4 = {valueCount * sizeof(float)} bytes.");
            }

            bytes.CopyTo(MemoryMarshal.AsBytes(values.AsSpan(checked((int)filled), (int)count)));
            filled += count;
        }

        if (filled != valueCount)
        {
            throw new FileFormatException(source, $"S of {name} has {filled * sizeof(float)} bytes, expected D x e x 4 = {header.ExpandedDim} x {header.ValueDim} x 4 = {valueCount * sizeof(float)}.");
        }

        var normalizer = new float[header.ExpandedDim];
        ReadOnlySequence<byte> normalizerBytes = ReadBin(ref reader, source, $"s of {name}");
        if (normalizerBytes.Length != (long)header.ExpandedDim * sizeof(float))
        {
            throw new FileFormatException(source, $"s of {name} has {normalizerBytes.Length} bytes, expected D x 4 = {header.ExpandedDim} x 4 = {(long)header.ExpandedDim * sizeof(float)}.");
        }

        normalizerBytes.CopyTo(MemoryMarshal.AsBytes(normalizer.AsSpan()));
        return new HeadState(values, normalizer);
    }

    private static void ExpectArray(ref MessagePackReader reader, string source, string name, int length, string layout)
    {
        if (reader.NextMessagePackType != MessagePackType.Array)
        {
            throw new FileFormatException(source, $"{name} is a MessagePack {reader.NextMessagePackType}, expected an array {layout}.");
        }

        int count = reader.ReadArrayHeader();
        if (count != length)
        {
            throw new FileFormatException(source, $"{name} has {count} elements, expected {length}: {layout}.");
        }
    }

    /// <summary>Reads a bin, first checking that all the bytes its header declares are present.</summary>
    private static ReadOnlySequence<byte> ReadBin(ref MessagePackReader reader, string source, string element)
    {
        if (reader.NextMessagePackType != MessagePackType.Binary)
        {
            throw new FileFormatException(source, $"{element} is a MessagePack {reader.NextMessagePackType}, expected bin.");
        }

        // A bin header is its code followed by a 1, 2 or 4 byte big-endian length.
        int lengthBytes = reader.NextCode switch
        {
            MessagePackCode.Bin8 => 1,
            MessagePackCode.Bin16 => 2,
            _ => 4,
        };

        ReadOnlySequence<byte> rest = reader.Sequence.Slice(reader.Position);
        if (rest.Length < 1 + lengthBytes)
        {
            throw new FileFormatException(source, $"the data is truncated inside the bin header of {element}.");
        }

        Span<byte> prefix = stackalloc byte[5];
        rest.Slice(1, lengthBytes).CopyTo(prefix);
        long declared = lengthBytes switch
        {
            1 => prefix[0],
            2 => BinaryPrimitives.ReadUInt16BigEndian(prefix),
            _ => BinaryPrimitives.ReadUInt32BigEndian(prefix),
        };

        long available = rest.Length - 1 - lengthBytes;
        if (declared > available)
        {
            throw new FileFormatException(source, $"the data is truncated: {element} declares {declared} bytes, but only {available} remain.");
        }

        return reader.ReadBytes()!.Value;
    }

    private static unsafe ReadOnlySequence<byte> SequenceOver(MappedRegion region, int segmentBytes)
    {
        if (region.Length <= segmentBytes)
        {
            return new ReadOnlySequence<byte>(new UnmanagedMemory(region.Pointer, (int)region.Length).Memory);
        }

        var first = new MappedSegment(new UnmanagedMemory(region.Pointer, segmentBytes).Memory, 0);
        MappedSegment last = first;
        for (long offset = segmentBytes; offset < region.Length; offset += segmentBytes)
        {
            int length = (int)Math.Min(segmentBytes, region.Length - offset);
            last = last.Append(new UnmanagedMemory(region.Pointer + offset, length).Memory);
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    /// <summary>Memory over part of a file mapping that outlives every use of this object.</summary>
    private sealed unsafe class UnmanagedMemory : MemoryManager<byte>
    {
        private readonly byte* _pointer;
        private readonly int _length;

        public UnmanagedMemory(byte* pointer, int length)
        {
            _pointer = pointer;
            _length = length;
        }

        public override Span<byte> GetSpan() => new(_pointer, _length);

        public override MemoryHandle Pin(int elementIndex = 0) => new(_pointer + elementIndex);

        public override void Unpin()
        {
        }

        protected override void Dispose(bool disposing)
        {
        }
    }

    private sealed class MappedSegment : ReadOnlySequenceSegment<byte>
    {
        public MappedSegment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public MappedSegment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new MappedSegment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
