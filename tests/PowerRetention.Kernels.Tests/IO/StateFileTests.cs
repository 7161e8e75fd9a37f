using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using MessagePack;
using PowerRetention.Kernels.IO;

namespace PowerRetention.Kernels.Tests.IO;

public sealed class StateFileTests : IDisposable
{
    private const string Source = "state-under-test";

    // d = 2 and p = 2 give D = C(3, 2) = 3; with e = 3 each head has S of 9 floats and s of 3.
    private static readonly (string Key, object Value)[] s_validHeader =
    [
        ("format", "powerret-state"),
        ("version", 1),
        ("degree", 2),
        ("key_dim", 2),
        ("value_dim", 3),
        ("expanded_dim", 3),
        ("heads", 2),
        ("batch", 1),
    ];

    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("powerret-state-");

    public void Dispose() => _folder.Delete(recursive: true);

    [Fact]
    public void SerializeDeserialize_RoundTripsBitExact()
    {
        RetentionState state = RandomState(batch: 2, heads: 3, keyDim: 3, valueDim: 5, degree: 2, seed: 1);

        byte[] bytes = StateFile.Serialize(state);
        RetentionState read = StateFile.Deserialize(bytes, Source);

        AssertSameState(state, read);
    }

    [Fact]
    public void WriteRead_RoundTripsBitExact()
    {
        string path = PathOf("state.msgpack");
        RetentionState state = RandomState(batch: 1, heads: 2, keyDim: 4, valueDim: 3, degree: 4, seed: 2);

        StateFile.Write(path, state);
        RetentionState read = StateFile.Read(path);

        AssertSameState(state, read);
    }

    [Fact]
    public void Write_File_EqualsSerializedBytes()
    {
        string path = PathOf("same.msgpack");
        RetentionState state = RandomState(batch: 2, heads: 1, keyDim: 2, valueDim: 2, degree: 2, seed: 3);

        StateFile.Write(path, state);

        Assert.Equal(StateFile.Serialize(state), File.ReadAllBytes(path));
    }

    [Fact]
    public void Read_SegmentedMapping_RoundTripsBitExact()
    {
        string path = PathOf("segments.msgpack");
        RetentionState state = RandomState(batch: 2, heads: 2, keyDim: 3, valueDim: 4, degree: 2, seed: 8);
        StateFile.Write(path, state);

        // Segments of 7 bytes make every header, bin length and float straddle segment boundaries.
        RetentionState read = StateFile.Read(path, segmentBytes: 7);

        AssertSameState(state, read);
    }

    [Fact]
    public void ReadHeader_ReturnsSizes()
    {
        string path = PathOf("header.msgpack");
        StateFile.Write(path, RandomState(batch: 2, heads: 3, keyDim: 4, valueDim: 5, degree: 2, seed: 4));

        StateFileHeader header = StateFile.ReadHeader(path);

        Assert.Equal(new StateFileHeader(Version: 1, Degree: 2, KeyDim: 4, ValueDim: 5, ExpandedDim: 10, Heads: 3, Batch: 2), header);
        Assert.Equal(2L * 3 * 10 * 6 * 4, header.PayloadBytes);
    }

    [Fact]
    public void Serialize_Layout_MatchesDocumentedFormat()
    {
        RetentionState state = RandomState(batch: 1, heads: 2, keyDim: 2, valueDim: 3, degree: 2, seed: 5);

        byte[] bytes = StateFile.Serialize(state);

        var reader = new MessagePackReader(bytes);
        Assert.Equal(2, reader.ReadArrayHeader());
        Assert.Equal(8, reader.ReadMapHeader());
        var header = new Dictionary<string, object>();
        for (int i = 0; i < 8; i++)
        {
            string key = reader.ReadString()!;
            header[key] = key == "format" ? reader.ReadString()! : reader.ReadInt32();
        }

        Assert.Equal("powerret-state", header["format"]);
        Assert.Equal(1, header["version"]);
        Assert.Equal(2, header["degree"]);
        Assert.Equal(2, header["key_dim"]);
        Assert.Equal(3, header["value_dim"]);
        Assert.Equal(3, header["expanded_dim"]);
        Assert.Equal(2, header["heads"]);
        Assert.Equal(1, header["batch"]);
        Assert.Equal(2, reader.ReadArrayHeader());
        for (int head = 0; head < 2; head++)
        {
            Assert.Equal(2, reader.ReadArrayHeader());
            Assert.Equal(1, reader.ReadArrayHeader());
            byte[] values = reader.ReadBytes()!.Value.ToArray();
            byte[] normalizer = reader.ReadBytes()!.Value.ToArray();
            Assert.Equal(SinglesLittleEndian(state.HeadStates[head].Values), values);
            Assert.Equal(SinglesLittleEndian(state.HeadStates[head].Normalizer), normalizer);
        }

        Assert.True(reader.End);
    }

    [Fact]
    public void Serialize_SmallChunks_SplitsValuesAndRoundTrips()
    {
        RetentionState state = RandomState(batch: 1, heads: 1, keyDim: 2, valueDim: 3, degree: 2, seed: 6);

        byte[] bytes = StateFile.Serialize(state, chunkBytes: 8);
        RetentionState read = StateFile.Deserialize(bytes, Source);

        var reader = new MessagePackReader(bytes);
        reader.ReadArrayHeader();
        reader.Skip();
        reader.ReadArrayHeader();
        reader.ReadArrayHeader();
        Assert.Equal(5, reader.ReadArrayHeader());
        AssertSameState(state, read);
    }

    [Fact]
    public void Deserialize_HandBuiltState_ReturnsValues()
    {
        float[] values0 = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        float[] values1 = [-1, -2, -3, -4, -5, -6, -7, -8, -9.5f];
        byte[] bytes = Encode(s_validHeader, [
            ([SinglesLittleEndian(values0[..4]), SinglesLittleEndian(values0[4..])], SinglesLittleEndian(0.5f, 0.25f, 0.125f)),
            ([SinglesLittleEndian(values1)], SinglesLittleEndian(1f, 2f, 3f)),
        ]);

        RetentionState state = StateFile.Deserialize(bytes, Source);

        Assert.Equal((1, 2, 2, 3, 2, 3), (state.Batch, state.Heads, state.KeyDim, state.ValueDim, state.Degree, state.ExpandedDim));
        Assert.Equal(values0, state[0, 0].Values);
        Assert.Equal([0.5f, 0.25f, 0.125f], state[0, 0].Normalizer);
        Assert.Equal(values1, state[0, 1].Values);
        Assert.Equal([1f, 2f, 3f], state[0, 1].Normalizer);
    }

    [Fact]
    public void Deserialize_WrongFormatName_NamesField()
    {
        byte[] bytes = Encode(WithField("format", "numpy"), ValidHeads());

        AssertFormatError(bytes, "not a powerret-state file: header field 'format' is 'numpy'");
    }

    [Fact]
    public void Deserialize_MissingFormat_NamesField()
    {
        byte[] bytes = Encode(WithoutField("format"), ValidHeads());

        AssertFormatError(bytes, "the header has no 'format' field");
    }

    [Fact]
    public void Deserialize_NotMessagePackArray_NamesProblem()
    {
        byte[] bytes = "hello"u8.ToArray();

        AssertFormatError(bytes, "not a powerret-state file: it starts with a MessagePack");
    }

    [Fact]
    public void Deserialize_UnsupportedVersion_NamesVersion()
    {
        byte[] bytes = Encode(WithField("version", 2), ValidHeads());

        AssertFormatError(bytes, "unsupported format version 2 in header field 'version'");
    }

    [Theory]
    [InlineData(3)]
    [InlineData(0)]
    [InlineData(-2)]
    public void Deserialize_InvalidDegree_NamesDegree(int degree)
    {
        byte[] bytes = Encode(WithField("degree", degree), ValidHeads());

        AssertFormatError(bytes, $"header field 'degree' is {degree}, but the degree must be even");
    }

    [Fact]
    public void Deserialize_ExpandedDimMismatch_NamesExpectedValue()
    {
        byte[] bytes = Encode(WithField("expanded_dim", 4), ValidHeads());

        AssertFormatError(bytes, "header field 'expanded_dim' is 4, but key_dim 2 and degree 2 give D = C(d + p - 1, p) = 3");
    }

    [Theory]
    [InlineData("heads", 0)]
    [InlineData("batch", -1)]
    [InlineData("value_dim", 0)]
    [InlineData("key_dim", -4)]
    public void Deserialize_NonPositiveSize_NamesField(string field, int value)
    {
        byte[] bytes = Encode(WithField(field, value), ValidHeads());

        AssertFormatError(bytes, $"header field '{field}' is {value}, but it must be a positive integer");
    }

    [Fact]
    public void Deserialize_SizeBeyondInt_NamesField()
    {
        byte[] bytes = Encode(WithField("value_dim", 5_000_000_000L), ValidHeads());

        AssertFormatError(bytes, "header field 'value_dim' is 5000000000, more than the maximum");
    }

    [Fact]
    public void Deserialize_MissingField_NamesField()
    {
        byte[] bytes = Encode(WithoutField("heads"), ValidHeads());

        AssertFormatError(bytes, "the header has no 'heads' field");
    }

    [Fact]
    public void Deserialize_UnknownField_NamesField()
    {
        byte[] bytes = Encode([.. s_validHeader, ("dtype", "f16")], ValidHeads());

        AssertFormatError(bytes, "header field 'dtype' is not a field of this format");
    }

    [Fact]
    public void Deserialize_DuplicateField_NamesField()
    {
        byte[] bytes = Encode([.. s_validHeader, ("heads", 2)], ValidHeads());

        AssertFormatError(bytes, "header field 'heads' appears twice");
    }

    [Fact]
    public void Deserialize_StringSize_NamesField()
    {
        byte[] bytes = Encode(WithField("batch", "one"), ValidHeads());

        AssertFormatError(bytes, "header field 'batch' is a MessagePack String, expected an integer");
    }

    [Fact]
    public void Deserialize_TruncatedData_NamesByteCounts()
    {
        byte[] bytes = Encode(s_validHeader, ValidHeads());

        // The payload is 2 heads x (9 + 3) floats x 4 bytes = 96 bytes, framed by 13 bytes of headers.
        AssertFormatError(bytes[..^20], "need 96 bytes of float32 data, but only 89 bytes follow the header");
    }

    [Fact]
    public void Deserialize_TruncatedBin_NamesByteCounts()
    {
        // s of head 1 contains 8 floats instead of 3, so the cut file still has more bytes than the
        // 96-byte payload and only the per-bin check can catch the cut.
        (byte[][], byte[])[] heads = [ValidHeads()[0], ([SinglesLittleEndian(new float[9])], SinglesLittleEndian(new float[8]))];
        byte[] bytes = Encode(s_validHeader, heads);

        AssertFormatError(bytes[..^26], "s of head 1 (batch 0, head 1) declares 32 bytes, but only 6 remain");
    }

    [Fact]
    public void Deserialize_TrailingGarbage_NamesByteCount()
    {
        byte[] bytes = [.. Encode(s_validHeader, ValidHeads()), 0xC0, 0xC0, 0xC0];

        AssertFormatError(bytes, "3 bytes of trailing data follow the state");
    }

    [Fact]
    public void Deserialize_ShortValues_NamesExpectedAndActualBytes()
    {
        (byte[][], byte[])[] heads = [ValidHeads()[0], ([SinglesLittleEndian(new float[8])], SinglesLittleEndian(new float[4]))];
        byte[] bytes = Encode(s_validHeader, heads);

        AssertFormatError(bytes, "S of head 1 (batch 0, head 1) has 32 bytes, expected D x e x 4 = 3 x 3 x 4 = 36");
    }

    [Fact]
    public void Deserialize_LongNormalizer_NamesExpectedAndActualBytes()
    {
        (byte[][], byte[])[] heads = [([SinglesLittleEndian(new float[9])], SinglesLittleEndian(new float[4])), ValidHeads()[1]];
        byte[] bytes = Encode(s_validHeader, heads);

        AssertFormatError(bytes, "s of head 0 (batch 0, head 0) has 16 bytes, expected D x 4 = 3 x 4 = 12");
    }

    [Fact]
    public void Deserialize_PartialFloatChunk_NamesChunk()
    {
        (byte[][], byte[])[] heads = [([new byte[6], new byte[30]], SinglesLittleEndian(new float[3])), ValidHeads()[1]];
        byte[] bytes = Encode(s_validHeader, heads);

        AssertFormatError(bytes, "S chunk 0 of head 0 (batch 0, head 0) has 6 bytes, not a whole number of float32 values");
    }

    [Fact]
    public void Deserialize_WrongHeadCount_NamesCounts()
    {
        byte[] bytes = Encode(s_validHeader, [.. ValidHeads(), .. ValidHeads()[..1]]);

        AssertFormatError(bytes, "the file contains 3 heads, but the header declares batch 1 x heads 2 = 2");
    }

    [Fact]
    public void Deserialize_HugeHeaderNoData_ReportsTruncation()
    {
        // d = 64, p = 4 give D = 766,480; with e = 64 one head would need 196 MB.
        (string, object)[] header =
        [
            ("format", "powerret-state"), ("version", 1), ("degree", 4), ("key_dim", 64),
            ("value_dim", 64), ("expanded_dim", 766_480), ("heads", 8), ("batch", 4),
        ];
        byte[] bytes = Encode(header, []);

        // 4 x 8 heads x 766,480 x (64 + 1) floats x 4 bytes.
        AssertFormatError(bytes, "need 6377113600 bytes of float32 data");
    }

    [Fact]
    public void Read_MissingFile_ThrowsFileNotFound()
    {
        string path = PathOf("missing.msgpack");

        var error = Assert.Throws<FileNotFoundException>(() => StateFile.Read(path));

        Assert.Equal(path, error.FileName);
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void Read_InvalidFile_NamesPathAndField()
    {
        string path = PathOf("bad-degree.msgpack");
        File.WriteAllBytes(path, Encode(WithField("degree", 5), ValidHeads()));

        var error = Assert.Throws<FileFormatException>(() => StateFile.Read(path));

        Assert.StartsWith(path, error.Message);
        Assert.Contains("header field 'degree' is 5", error.Message);
    }

    [Fact]
    public void ReadHeader_UnsupportedVersion_NamesPathAndVersion()
    {
        string path = PathOf("version.msgpack");
        File.WriteAllBytes(path, Encode(WithField("version", 7), ValidHeads()));

        var error = Assert.Throws<FileFormatException>(() => StateFile.ReadHeader(path));

        Assert.StartsWith(path, error.Message);
        Assert.Contains("unsupported format version 7", error.Message);
    }

    [Fact]
    public void ReadHeader_TruncatedData_StillReturnsHeader()
    {
        string path = PathOf("cut.msgpack");
        File.WriteAllBytes(path, Encode(s_validHeader, ValidHeads())[..^40]);

        StateFileHeader header = StateFile.ReadHeader(path);

        Assert.Equal(3, header.ExpandedDim);
    }

    [Fact]
    public void Write_MissingFolder_ThrowsDirectoryNotFound()
    {
        string path = Path.Combine(_folder.FullName, "absent", "state.msgpack");
        RetentionState state = RandomState(batch: 1, heads: 1, keyDim: 2, valueDim: 2, degree: 2, seed: 7);

        Assert.Throws<DirectoryNotFoundException>(() => StateFile.Write(path, state));
    }

    private string PathOf(string name) => Path.Combine(_folder.FullName, name);

    private static void AssertFormatError(byte[] bytes, string expectedProblem)
    {
        var error = Assert.Throws<FileFormatException>(() => StateFile.Deserialize(bytes, Source));
        Assert.StartsWith(Source + ": ", error.Message);
        Assert.Contains(expectedProblem, error.Message);
    }

    private static void AssertSameState(RetentionState expected, RetentionState actual)
    {
        Assert.Equal(
            (expected.Batch, expected.Heads, expected.KeyDim, expected.ValueDim, expected.Degree, expected.ExpandedDim),
            (actual.Batch, actual.Heads, actual.KeyDim, actual.ValueDim, actual.Degree, actual.ExpandedDim));
        for (int i = 0; i < expected.HeadStates.Count; i++)
        {
            Assert.Equal(Bits(expected.HeadStates[i].Values), Bits(actual.HeadStates[i].Values));
            Assert.Equal(Bits(expected.HeadStates[i].Normalizer), Bits(actual.HeadStates[i].Normalizer));
        }
    }

    private static int[] Bits(float[] values) => MemoryMarshal.Cast<float, int>(values).ToArray();

    private static RetentionState RandomState(int batch, int heads, int keyDim, int valueDim, int degree, int seed)
    {
        var random = new Random(seed);
        var state = new RetentionState(batch, heads, keyDim, valueDim, degree);
        foreach (HeadState head in state.HeadStates)
        {
            for (int i = 0; i < head.Values.Length; i++)
            {
                head.Values[i] = (float)((random.NextDouble() * 200) - 100);
            }

            for (int i = 0; i < head.Normalizer.Length; i++)
            {
                head.Normalizer[i] = (float)random.NextDouble();
            }
        }

        return state;
    }

    private static (string Key, object Value)[] WithField(string key, object value) =>
        [.. s_validHeader.Select(field => field.Key == key ? (key, value) : field)];

    private static (string Key, object Value)[] WithoutField(string key) =>
        [.. s_validHeader.Where(field => field.Key != key)];

    private static (byte[][] Values, byte[] Normalizer)[] ValidHeads() =>
    [
        ([SinglesLittleEndian(new float[9])], SinglesLittleEndian(1f, 2f, 3f)),
        ([SinglesLittleEndian(new float[9])], SinglesLittleEndian(4f, 5f, 6f)),
    ];

    /// <summary>Encodes a state by the documented layout: [header map, [[S chunks], s] per head].</summary>
    private static byte[] Encode(IReadOnlyList<(string Key, object Value)> header, IReadOnlyList<(byte[][] Values, byte[] Normalizer)> heads)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(buffer);
        writer.WriteArrayHeader(2);
        writer.WriteMapHeader(header.Count);
        foreach ((string key, object value) in header)
        {
            writer.Write(key);
            switch (value)
            {
                case string text:
                    writer.Write(text);
                    break;
                case int number:
                    writer.Write(number);
                    break;
                case long number:
                    writer.Write(number);
                    break;
                default:
                    throw new ArgumentException($"Unsupported header value {value}.", nameof(header));
            }
        }

        writer.WriteArrayHeader(heads.Count);
        foreach ((byte[][] values, byte[] normalizer) in heads)
        {
            writer.WriteArrayHeader(2);
            writer.WriteArrayHeader(values.Length);
            foreach (byte[] chunk in values)
            {
                writer.Write(chunk);
            }

            writer.Write(normalizer);
        }

        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    private static byte[] SinglesLittleEndian(params float[] values)
    {
        var bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), values[i]);
        }

        return bytes;
    }
}
