using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using PowerRetention.Kernels.IO;

namespace PowerRetention.Kernels.Tests.IO;

public sealed class SafetensorsFileTests : IDisposable
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("powerret-safetensors-");

    public void Dispose() => _folder.Delete(recursive: true);

    public static TheoryData<DataType> DataTypes() => new(DataType.Float32, DataType.Float16, DataType.BFloat16);

    [Theory]
    [MemberData(nameof(DataTypes))]
    public void WriteRead_RoundTripsEveryShape(DataType type)
    {
        string path = PathOf("round-trip.safetensors");
        int[][] shapes = [[7], [0], [2, 0, 3], [3, 1, 2], [1, 1, 1, 5], []];
        var tensors = new Dictionary<string, Tensor>();
        for (int i = 0; i < shapes.Length; i++)
        {
            tensors[$"t{i}"] = Tensor.FromSingles(type, Ramp(Tensor.ElementCountOf(shapes[i]), offset: i), shapes[i]);
        }

        SafetensorsFile.Write(path, tensors);
        using SafetensorsReader reader = SafetensorsFile.Open(path);

        for (int i = 0; i < shapes.Length; i++)
        {
            using Tensor read = reader.GetTensor($"t{i}");
            Assert.Equal(type, read.DataType);
            Assert.Equal(shapes[i], read.Shape.ToArray());
            Assert.Equal(tensors[$"t{i}"].ToSingleArray(), read.ToSingleArray());
        }
    }

    [Fact]
    public void WriteRead_MixedTypesAndMetadata_RoundTrip()
    {
        string path = PathOf("mixed.safetensors");
        var tensors = new Dictionary<string, Tensor>
        {
            ["q"] = Tensor.FromSingles(DataType.BFloat16, [1f, 2f, 3f], 3),
            ["k"] = Tensor.FromSingles(DataType.Float16, [0.5f], 1, 1),
            ["v"] = Tensor.FromSingles(DataType.Float32, [1e-7f, -3f, 4f, 5f, 6f], 5),
        };
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcode, \"quotes\"" };

        SafetensorsFile.Write(path, tensors, metadata);
        using SafetensorsReader reader = SafetensorsFile.Open(path);

        Assert.Equal(["k", "q", "v"], reader.TensorNames);
        Assert.Equal(metadata, reader.Metadata);
        Assert.Equal(DataType.Float16, reader.GetInfo("k").DataType);
        Assert.Equal("BF16", reader.GetInfo("q").DtypeName);
        using Tensor v = reader.GetTensor("v");
        Assert.Equal([1e-7f, -3f, 4f, 5f, 6f], v.ToSingleArray());
    }

    [Fact]
    public void Write_OneTensor_MatchesSpecBytes()
    {
        string path = PathOf("bytes.safetensors");
        var tensors = new Dictionary<string, Tensor> { ["x"] = Tensor.FromSingles(DataType.Float32, [1f, -2f], 2) };

        SafetensorsFile.Write(path, tensors, new Dictionary<string, string> { ["k"] = "v" });
        byte[] bytes = File.ReadAllBytes(path);

        string json = """{"__metadata__":{"k":"v"},"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""";
        int paddedLength = (json.Length + 7) / 8 * 8;
        var prefix = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)paddedLength);
        var expected = new List<byte>(prefix);
        expected.AddRange(Encoding.UTF8.GetBytes(json.PadRight(paddedLength)));
        expected.AddRange([0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xC0]);
        Assert.Equal(expected.ToArray(), bytes);
    }

    [Fact]
    public void Write_Header_IsPaddedToMultipleOf8()
    {
        string path = PathOf("padded.safetensors");
        var tensors = new Dictionary<string, Tensor> { ["odd-name"] = Tensor.Zeros(DataType.Float16, 3) };

        SafetensorsFile.Write(path, tensors);
        byte[] bytes = File.ReadAllBytes(path);

        long headerLength = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0, headerLength % 8);
        Assert.Equal(8 + headerLength + 6, bytes.Length);
        string header = Encoding.UTF8.GetString(bytes, 8, (int)headerLength);
        Assert.EndsWith("}", header.TrimEnd(' '));
    }

    [Fact]
    public void Write_Entries_SortedAndContiguous()
    {
        string path = PathOf("order.safetensors");
        var tensors = new Dictionary<string, Tensor>
        {
            ["b"] = Tensor.Zeros(DataType.Float32, 2),
            ["a"] = Tensor.Zeros(DataType.BFloat16, 3),
            ["_x"] = Tensor.Zeros(DataType.Float16, 1),
            ["B"] = Tensor.Zeros(DataType.Float32, 0),
        };

        SafetensorsFile.Write(path, tensors);
        byte[] bytes = File.ReadAllBytes(path);

        int headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        using JsonDocument header = JsonDocument.Parse(bytes.AsMemory(8, headerLength));
        JsonProperty[] entries = [.. header.RootElement.EnumerateObject()];
        Assert.Equal(["B", "_x", "a", "b"], entries.Select(e => e.Name));
        long expectedBegin = 0;
        foreach (JsonProperty entry in entries)
        {
            long[] offsets = [.. entry.Value.GetProperty("data_offsets").EnumerateArray().Select(o => o.GetInt64())];
            Assert.Equal(expectedBegin, offsets[0]);
            expectedBegin = offsets[1];
        }

        Assert.Equal(bytes.Length - 8 - headerLength, expectedBegin);
    }

    [Fact]
    public void Open_HandBuiltFile_ReturnsValues()
    {
        string path = PathOf("hand-built.safetensors");
        string json = """
            {"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},
             "b":{"dtype":"BF16","shape":[1,2],"data_offsets":[8,12]},
             "c":{"dtype":"F16","shape":[],"data_offsets":[12,14]},
             "__metadata__":{"format":"pt"}}
            """;

        // 1.5f and -2.25f as float32, 1 and -0.5 as bfloat16, 0.5 as binary16, all little-endian.
        byte[] data = [0x00, 0x00, 0xC0, 0x3F, 0x00, 0x00, 0x10, 0xC0, 0x80, 0x3F, 0x00, 0xBF, 0x00, 0x38];
        File.WriteAllBytes(path, SafetensorsBytes(json, data));

        using SafetensorsReader reader = SafetensorsFile.Open(path);
        using Tensor a = reader.GetTensor("a");
        using Tensor b = reader.GetTensor("b");
        using Tensor c = reader.GetTensor("c");

        Assert.Equal([1.5f, -2.25f], a.ToSingleArray());
        Assert.Equal(DataType.BFloat16, b.DataType);
        Assert.Equal([1, 2], b.Shape.ToArray());
        Assert.Equal([1f, -0.5f], b.ToSingleArray());
        Assert.Equal(DataType.Float16, c.DataType);
        Assert.Equal(0, c.Rank);
        Assert.Equal([0.5f], c.ToSingleArray());
        Assert.Equal("pt", reader.Metadata["format"]);
    }

    [Fact]
    public void GetTensor_UnsupportedDtype_NamesTensorAndDtype()
    {
        string path = PathOf("f64.safetensors");
        string json = """{"d":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},"f":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}""";
        File.WriteAllBytes(path, SafetensorsBytes(json, [0, 0, 0, 0, 0, 0, 0xF0, 0x3F, 0x00, 0x00, 0x80, 0x3F]));
        using SafetensorsReader reader = SafetensorsFile.Open(path);

        var error = Assert.Throws<FileFormatException>(() => reader.GetTensor("d"));

        Assert.StartsWith(path, error.Message);
        Assert.Contains("tensor 'd' has dtype F64", error.Message);
        Assert.Equal(["d", "f"], reader.TensorNames);
        Assert.Null(reader.GetInfo("d").DataType);
        using Tensor f = reader.GetTensor("f");
        Assert.Equal([1f], f.ToSingleArray());
    }

    [Fact]
    public void GetTensor_UnknownName_ThrowsKeyNotFound()
    {
        string path = PathOf("names.safetensors");
        SafetensorsFile.Write(path, new Dictionary<string, Tensor> { ["w"] = Tensor.Zeros(DataType.Float32, 1) });
        using SafetensorsReader reader = SafetensorsFile.Open(path);

        var error = Assert.Throws<KeyNotFoundException>(() => reader.GetTensor("missing"));

        Assert.StartsWith(path, error.Message);
        Assert.Contains("'missing'", error.Message);
        Assert.Contains("'w'", error.Message);
    }

    [Fact]
    public void TryGetTensor_UnknownName_ReturnsFalse()
    {
        string path = PathOf("try.safetensors");
        SafetensorsFile.Write(path, new Dictionary<string, Tensor> { ["w"] = Tensor.FromSingles(DataType.Float16, [2f], 1) });
        using SafetensorsReader reader = SafetensorsFile.Open(path);

        bool foundMissing = reader.TryGetTensor("missing", out Tensor? missing);
        bool foundW = reader.TryGetTensor("w", out Tensor? w);

        Assert.False(foundMissing);
        Assert.Null(missing);
        Assert.True(foundW);
        Assert.Equal([2f], w!.ToSingleArray());
        w.Dispose();
    }

    [Fact]
    public void GetTensor_AfterReaderDisposed_TensorStaysValid()
    {
        string path = PathOf("lifetime.safetensors");
        SafetensorsFile.Write(path, new Dictionary<string, Tensor> { ["w"] = Tensor.FromSingles(DataType.Float32, [3f, 4f], 2) });
        SafetensorsReader reader = SafetensorsFile.Open(path);
        using Tensor tensor = reader.GetTensor("w");

        reader.Dispose();

        Assert.Equal([3f, 4f], tensor.ToSingleArray());
        Assert.Throws<ObjectDisposedException>(() => reader.GetTensor("w"));
    }

    [Fact]
    public void GetTensor_ReadOnlyMapping_RejectsWrites()
    {
        string path = PathOf("read-only.safetensors");
        SafetensorsFile.Write(path, new Dictionary<string, Tensor> { ["w"] = Tensor.Zeros(DataType.Float32, 2) });
        using SafetensorsReader reader = SafetensorsFile.Open(path);
        using Tensor tensor = reader.GetTensor("w");

        Assert.Throws<InvalidOperationException>(() => tensor.Storage.Write(0, [1f]));
    }

    [Fact]
    public void Open_MissingFile_ThrowsFileNotFound()
    {
        string path = PathOf("missing.safetensors");

        var error = Assert.Throws<FileNotFoundException>(() => SafetensorsFile.Open(path));

        Assert.Equal(path, error.FileName);
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void Open_ShorterThan8Bytes_NamesLength()
    {
        string path = PathOf("short.safetensors");
        File.WriteAllBytes(path, [1, 2, 3, 4, 5]);

        AssertFormatError(path, "has 5 bytes, fewer than the 8-byte header length", () => SafetensorsFile.Open(path));
    }

    [Fact]
    public void Open_HeaderLongerThanFile_NamesLengths()
    {
        string path = PathOf("long-header.safetensors");
        byte[] bytes = new byte[8 + 10];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 1000);
        File.WriteAllBytes(path, bytes);

        AssertFormatError(path, "header length is 1000 bytes, but only 10 bytes follow", () => SafetensorsFile.Open(path));
    }

    [Fact]
    public void Open_InvalidJson_NamesProblem()
    {
        string path = PathOf("json.safetensors");
        File.WriteAllBytes(path, SafetensorsBytes("{\"a\": {\"dtype\": ", []));

        AssertFormatError(path, "not valid JSON", () => SafetensorsFile.Open(path));
    }

    [Fact]
    public void Open_HeaderNotObject_NamesProblem()
    {
        string path = PathOf("array.safetensors");
        File.WriteAllBytes(path, SafetensorsBytes("[1, 2]", []));

        AssertFormatError(path, "must be a JSON object, but it is a JSON Array", () => SafetensorsFile.Open(path));
    }

    [Theory]
    [InlineData("dtype")]
    [InlineData("shape")]
    [InlineData("data_offsets")]
    public void Open_MissingField_NamesTensorAndField(string field)
    {
        string path = PathOf($"no-{field}.safetensors");
        var fields = new Dictionary<string, string>
        {
            ["dtype"] = "\"F32\"",
            ["shape"] = "[2]",
            ["data_offsets"] = "[0, 8]",
        };
        fields.Remove(field);
        string json = "{\"w\": {" + string.Join(", ", fields.Select(f => $"\"{f.Key}\": {f.Value}")) + "}}";
        File.WriteAllBytes(path, SafetensorsBytes(json, new byte[8]));

        AssertFormatError(path, $"tensor 'w' has no \"{field}\" field", () => SafetensorsFile.Open(path));
    }

    [Fact]
    public void Open_OffsetsPastBuffer_NamesSizes()
    {
        string path = PathOf("past-end.safetensors");
        File.WriteAllBytes(path, SafetensorsBytes("""{"w":{"dtype":"F32","shape":[25],"data_offsets":[0,100]}}""", new byte[8]));

        AssertFormatError(path, "data_offsets [0, 100] of tensor 'w' extend past the end of the data buffer (8 bytes)", () => SafetensorsFile.Open(path));
    }

    [Fact]
    public void Open_OffsetsReversed_NamesOffsets()
    {
        string path = PathOf("reversed.safetensors");
        File.WriteAllBytes(path, SafetensorsBytes("""{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}}""", new byte[8]));

        AssertFormatError(path, "data_offsets [8, 4] of tensor 'w' end before they begin", () => SafetensorsFile.Open(path));
    }

    [Fact]
    public void Open_OffsetsShapeMismatch_NamesByteCounts()
    {
        string path = PathOf("size.safetensors");
        File.WriteAllBytes(path, SafetensorsBytes("""{"w":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,8]}}""", new byte[8]));

        AssertFormatError(path, "tensor 'w' (BF16, shape (2, 3)) needs 12 bytes, but data_offsets [0, 8] span 8 bytes", () => SafetensorsFile.Open(path));
    }

    [Fact]
    public void Open_WrongSizeInt64_NamesExpectedBytes()
    {
        string path = PathOf("i64-size.safetensors");
        File.WriteAllBytes(path, SafetensorsBytes("""{"w":{"dtype":"I64","shape":[2],"data_offsets":[0,8]}}""", new byte[8]));

        AssertFormatError(path, "needs 16 bytes", () => SafetensorsFile.Open(path));
    }

    [Fact]
    public void Open_NegativeDimension_NamesDimension()
    {
        string path = PathOf("negative.safetensors");
        File.WriteAllBytes(path, SafetensorsBytes("""{"w":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,0]}}""", []));

        AssertFormatError(path, "dimension 1 of tensor 'w' is negative (-1)", () => SafetensorsFile.Open(path));
    }

    [Fact]
    public void Open_FractionalDimension_NamesDimension()
    {
        string path = PathOf("fraction.safetensors");
        File.WriteAllBytes(path, SafetensorsBytes("""{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,0]}}""", []));

        AssertFormatError(path, "dimension 0 of tensor 'w' is 1.5", () => SafetensorsFile.Open(path));
    }

    [Fact]
    public void Open_NonStringMetadata_NamesKey()
    {
        string path = PathOf("metadata.safetensors");
        File.WriteAllBytes(path, SafetensorsBytes("""{"__metadata__":{"epoch":3}}""", []));

        AssertFormatError(path, "metadata value 'epoch' is a JSON Number", () => SafetensorsFile.Open(path));
    }

    [Fact]
    public void Open_DuplicateName_NamesTensor()
    {
        string path = PathOf("duplicate.safetensors");
        string entry = """{"dtype":"F32","shape":[1],"data_offsets":[0,4]}""";
        File.WriteAllBytes(path, SafetensorsBytes($$"""{"w":{{entry}},"w":{{entry}}}""", new byte[4]));

        AssertFormatError(path, "tensor 'w' appears twice", () => SafetensorsFile.Open(path));
    }

    [Fact]
    public void Write_MetadataKeyAsName_ThrowsArgument()
    {
        string path = PathOf("reserved.safetensors");
        var tensors = new Dictionary<string, Tensor> { ["__metadata__"] = Tensor.Zeros(DataType.Float32, 1) };

        var error = Assert.Throws<ArgumentException>(() => SafetensorsFile.Write(path, tensors));

        Assert.Contains("__metadata__", error.Message);
        Assert.Empty(_folder.GetFiles());
    }

    [Fact]
    public void Write_StorageFailsMidway_LeavesNoFile()
    {
        string path = PathOf("failed.safetensors");
        var tensors = new Dictionary<string, Tensor>
        {
            ["a"] = Tensor.Zeros(DataType.Float32, 10),
            ["b"] = new Tensor(new FailingStorage(200_000, failAt: 100_000), 200_000),
        };

        Assert.Throws<InvalidOperationException>(() => SafetensorsFile.Write(path, tensors));

        Assert.Empty(_folder.GetFiles());
    }

    [Fact]
    public void Write_StorageFailsMidway_KeepsPreviousFile()
    {
        string path = PathOf("kept.safetensors");
        SafetensorsFile.Write(path, new Dictionary<string, Tensor> { ["a"] = Tensor.FromSingles(DataType.Float32, [5f], 1) });
        var failing = new Dictionary<string, Tensor> { ["a"] = new Tensor(new FailingStorage(200_000, failAt: 100_000), 200_000) };

        Assert.Throws<InvalidOperationException>(() => SafetensorsFile.Write(path, failing));

        using SafetensorsReader reader = SafetensorsFile.Open(path);
        using Tensor a = reader.GetTensor("a");
        Assert.Equal([5f], a.ToSingleArray());
        Assert.Single(_folder.GetFiles());
    }

    [Fact]
    public void Create_DisposeWithoutCommit_LeavesNoFiles()
    {
        string path = PathOf("pending.safetensors");

        using (SafetensorsPendingFile pending = SafetensorsFile.Create(path, [("y", DataType.Float32, [2, 3])]))
        {
            pending["y"].Storage.Write(0, [1f, 2f]);
            Assert.Single(_folder.GetFiles());
            Assert.False(File.Exists(path));
        }

        Assert.Empty(_folder.GetFiles());
    }

    [Fact]
    public void Create_Commit_LeavesOnlyFinalFile()
    {
        string path = PathOf("committed.safetensors");
        (string, DataType, int[])[] layout =
        [
            ("y", DataType.BFloat16, [2, 3]),
            ("state", DataType.Float32, [4]),
            ("empty", DataType.Float16, [0, 2]),
        ];

        using (SafetensorsPendingFile pending = SafetensorsFile.Create(path, layout, new Dictionary<string, string> { ["rows"] = "2" }))
        {
            pending["y"].Storage.Write(3, [1f, -2f, 3f]);
            pending["state"].Storage.Write(0, [0.25f, 0.5f, 0.75f, 1f]);
            pending.Commit();
        }

        Assert.Equal([path], _folder.GetFiles().Select(f => f.FullName));
        using SafetensorsReader reader = SafetensorsFile.Open(path);
        using Tensor y = reader.GetTensor("y");
        using Tensor state = reader.GetTensor("state");
        using Tensor empty = reader.GetTensor("empty");
        Assert.Equal([0f, 0f, 0f, 1f, -2f, 3f], y.ToSingleArray());
        Assert.Equal([0.25f, 0.5f, 0.75f, 1f], state.ToSingleArray());
        Assert.Equal([0, 2], empty.Shape.ToArray());
        Assert.Equal("2", reader.Metadata["rows"]);
    }

    [Fact]
    public void Create_DuplicateNames_ThrowsArgument()
    {
        string path = PathOf("duplicate-create.safetensors");

        var error = Assert.Throws<ArgumentException>(() => SafetensorsFile.Create(path, [("y", DataType.Float32, [1]), ("y", DataType.Float16, [2])]));

        Assert.Contains("'y' appears twice", error.Message);
        Assert.Empty(_folder.GetFiles());
    }

    [Fact]
    public void Create_UnknownName_ThrowsKeyNotFound()
    {
        string path = PathOf("unknown.safetensors");
        using SafetensorsPendingFile pending = SafetensorsFile.Create(path, [("y", DataType.Float32, [1])]);

        var error = Assert.Throws<KeyNotFoundException>(() => pending["z"]);

        Assert.Contains("'z'", error.Message);
    }

    private string PathOf(string name) => Path.Combine(_folder.FullName, name);

    private static void AssertFormatError(string path, string expectedProblem, Action read)
    {
        var error = Assert.Throws<FileFormatException>(read);
        Assert.StartsWith(path, error.Message);
        Assert.Contains(expectedProblem, error.Message);
        Assert.Equal(path, error.FilePath);
    }

    private static float[] Ramp(long count, int offset)
    {
        var values = new float[count];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = ((i + offset) * 0.61f) - 2f;
        }

        return values;
    }

    /// <summary>Builds a safetensors file by the format's rules: u64 little-endian header length, JSON, data.</summary>
    private static byte[] SafetensorsBytes(string json, byte[] data)
    {
        byte[] header = Encoding.UTF8.GetBytes(json);
        var bytes = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)header.Length);
        header.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + header.Length);
        return bytes;
    }

    /// <summary>Float32 storage that throws once a read reaches element <paramref name="failAt"/>.</summary>
    private sealed class FailingStorage(long length, long failAt) : TensorStorage
    {
        public override DataType DataType => DataType.Float32;

        public override long Length => length;

        public override void Read(long offset, Span<float> destination)
        {
            if (offset + destination.Length > failAt)
            {
                throw new InvalidOperationException($"Simulated storage failure at element {offset}.");
            }

            destination.Fill(1f);
        }

        public override void Write(long offset, ReadOnlySpan<float> source) =>
            throw new NotSupportedException("This test storage is read-only.");
    }
}
