using System.Buffers;
using System.Runtime.InteropServices;
using MessagePack;

namespace PowerRetention.Kernels.IO;

/// <summary>
/// Reads and writes retention states in MessagePack. The whole file is one array of two elements:
/// <list type="number">
/// <item>a header map with the string keys "format" ("powerret-state"), "version" (1), "degree" (p),
/// "key_dim" (d), "value_dim" (e), "expanded_dim" (D), "heads" (h) and "batch" (b);</item>
/// <item>an array of b x h heads in batch-major order (index = batch x h + head), each an array [S, s].
/// S is an array of bin chunks that together contain D x e float32 values, row-major, and s is one bin of D
/// float32 values. Floats are little-endian and every chunk contains whole floats.</item>
/// </list>
/// S is split into chunks because a MessagePack bin contains at most 4 GiB - 1 bytes, and one head's S can
/// be larger. Writing a file streams one chunk at a time instead of building the file in memory.
/// </summary>
public static partial class StateFile
{
    /// <summary>Value of the "format" header field.</summary>
    public const string FormatName = "powerret-state";

    /// <summary>The format version this code writes and reads.</summary>
    public const int FormatVersion = 1;

    // Chunks of 1 GiB stay well under the 4 GiB bin limit and are a multiple of the float size.
    private const int DefaultChunkBytes = 1 << 30;

    // A mapped file is read as a chain of segments because one Memory<byte> spans at most 2 GiB.
    private const int DefaultSegmentBytes = 1 << 30;

    private const string FormatKey = "format";
    private const string VersionKey = "version";
    private const string DegreeKey = "degree";
    private const string KeyDimKey = "key_dim";
    private const string ValueDimKey = "value_dim";
    private const string ExpandedDimKey = "expanded_dim";
    private const string HeadsKey = "heads";
    private const string BatchKey = "batch";

    private static readonly string[] s_integerKeys = [VersionKey, DegreeKey, KeyDimKey, ValueDimKey, ExpandedDimKey, HeadsKey, BatchKey];

    /// <summary>Writes a state file, which appears under <paramref name="path"/> only once it is complete.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="state"/> is null.</exception>
    /// <exception cref="DirectoryNotFoundException">The target folder does not exist.</exception>
    public static void Write(string path, RetentionState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        AtomicFile.Write(path, stream => WriteTo(stream, state, DefaultChunkBytes));
    }

    /// <summary>Returns the state file bytes of <paramref name="state"/> in one array.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="state"/> is null.</exception>
    /// <exception cref="InvalidOperationException">The encoded state is larger than the maximum array length. Use <see cref="Write"/> instead.</exception>
    public static byte[] Serialize(RetentionState state) => Serialize(state, DefaultChunkBytes);

    /// <summary>Reads and validates a state file.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="FileFormatException">
    /// The file is not a state file (wrong format name), has an unsupported version, an odd degree or one
    /// below 2, a non-positive size, an expanded dim that does not match d and p, truncated data or
    /// trailing bytes. The message names the file and the field.
    /// </exception>
    /// <exception cref="InsufficientMemoryException">The declared state does not fit in memory.</exception>
    public static RetentionState Read(string path) => Read(path, DefaultSegmentBytes);

    /// <summary>Reads and validates only the header of a state file. The data after it is not checked.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="FileFormatException">The header is malformed or has an invalid field, as for <see cref="Read(string)"/>.</exception>
    public static StateFileHeader ReadHeader(string path)
    {
        using MappedRegion region = OpenMapped(path);
        return Decode(SequenceOver(region, DefaultSegmentBytes), path, headerOnly: true).Header;
    }

    /// <summary>Decodes and validates state file bytes held in memory.</summary>
    /// <param name="data">The bytes <see cref="Serialize(RetentionState)"/> produced, or a whole state file.</param>
    /// <param name="sourceName">Names the data in error messages, such as a file path or a storage key.</param>
    /// <exception cref="FileFormatException">The data is invalid, as for <see cref="Read(string)"/>.</exception>
    /// <exception cref="InsufficientMemoryException">The declared state does not fit in memory.</exception>
    public static RetentionState Deserialize(ReadOnlyMemory<byte> data, string sourceName) =>
        Decode(new ReadOnlySequence<byte>(data), sourceName, headerOnly: false).State!;

    /// <summary>Reads a state file mapped as a sequence of segments of at most <paramref name="segmentBytes"/> bytes.</summary>
    internal static RetentionState Read(string path, int segmentBytes)
    {
        using MappedRegion region = OpenMapped(path);
        return Decode(SequenceOver(region, segmentBytes), path, headerOnly: false).State!;
    }

    /// <summary>Serializes with S split into chunks of at most <paramref name="chunkBytes"/> bytes.</summary>
    internal static byte[] Serialize(RetentionState state, int chunkBytes)
    {
        ArgumentNullException.ThrowIfNull(state);

        // A dry run into Stream.Null measures the exact size, so the array needs no resizing or copy.
        long size = WriteTo(Stream.Null, state, chunkBytes);
        if (size > Array.MaxLength)
        {
            throw new InvalidOperationException($"The encoded state needs {size} bytes, more than the maximum array length of {Array.MaxLength}. Write it to a file with StateFile.Write instead.");
        }

        var buffer = new byte[size];
        using var stream = new MemoryStream(buffer, writable: true);
        long written = WriteTo(stream, state, chunkBytes);
        if (written != size)
        {
            throw new InvalidOperationException($"The state encoder wrote {written} bytes after measuring {size}.");
        }

        return buffer;
    }

    /// <summary>Writes the encoded state to <paramref name="stream"/> and returns the number of bytes written.</summary>
    private static long WriteTo(Stream stream, RetentionState state, int chunkBytes)
    {
        if (chunkBytes < sizeof(float) || chunkBytes % sizeof(float) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(chunkBytes), chunkBytes, "The chunk size must be a positive multiple of 4 bytes.");
        }

        var framing = new ArrayBufferWriter<byte>(256);
        var writer = new MessagePackWriter(framing);
        writer.WriteArrayHeader(2);
        WriteHeaderMap(ref writer, state);
        writer.WriteArrayHeader(state.HeadStates.Count);
        writer.Flush();
        long written = Drain(framing, stream);

        int chunkFloats = chunkBytes / sizeof(float);
        foreach (HeadState head in state.HeadStates)
        {
            int chunkCount = (int)((head.Values.LongLength + chunkFloats - 1) / chunkFloats);
            writer = new MessagePackWriter(framing);
            writer.WriteArrayHeader(2);
            writer.WriteArrayHeader(chunkCount);
            writer.Flush();
            written += Drain(framing, stream);

            for (long start = 0; start < head.Values.LongLength; start += chunkFloats)
            {
                int count = (int)Math.Min(chunkFloats, head.Values.LongLength - start);
                written += WriteBin(stream, framing, head.Values.AsSpan(checked((int)start), count));
            }

            written += WriteBin(stream, framing, head.Normalizer);
        }

        return written;
    }

    private static void WriteHeaderMap(ref MessagePackWriter writer, RetentionState state)
    {
        writer.WriteMapHeader(8);
        writer.Write(FormatKey);
        writer.Write(FormatName);
        writer.Write(VersionKey);
        writer.Write(FormatVersion);
        writer.Write(DegreeKey);
        writer.Write(state.Degree);
        writer.Write(KeyDimKey);
        writer.Write(state.KeyDim);
        writer.Write(ValueDimKey);
        writer.Write(state.ValueDim);
        writer.Write(ExpandedDimKey);
        writer.Write(state.ExpandedDim);
        writer.Write(HeadsKey);
        writer.Write(state.Heads);
        writer.Write(BatchKey);
        writer.Write(state.Batch);
    }

    // NOTE: floats are copied in host byte order, so this assumes a little-endian host such as x64 or Arm64.
    private static long WriteBin(Stream stream, ArrayBufferWriter<byte> framing, ReadOnlySpan<float> values)
    {
        ReadOnlySpan<byte> bytes = MemoryMarshal.AsBytes(values);
        var writer = new MessagePackWriter(framing);
        writer.WriteBinHeader(bytes.Length);
        writer.Flush();
        long written = Drain(framing, stream);
        stream.Write(bytes);
        return written + bytes.Length;
    }

    private static int Drain(ArrayBufferWriter<byte> framing, Stream stream)
    {
        int count = framing.WrittenCount;
        stream.Write(framing.WrittenSpan);
        framing.Clear();
        return count;
    }
}
