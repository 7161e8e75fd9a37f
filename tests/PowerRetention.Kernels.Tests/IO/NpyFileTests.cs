using System.Buffers.Binary;
using System.Text;
using PowerRetention.Kernels.IO;

namespace PowerRetention.Kernels.Tests.IO;

public sealed class NpyFileTests : IDisposable
{
    private static readonly byte[] s_magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("powerret-npy-");

    public void Dispose() => _folder.Delete(recursive: true);

    public static TheoryData<DataType, int[]> RoundTripCases()
    {
        var cases = new TheoryData<DataType, int[]>();
        foreach (DataType type in new[] { DataType.Float32, DataType.Float16 })
        {
            cases.Add(type, [7]);
            cases.Add(type, [0]);
            cases.Add(type, [2, 0, 3]);
            cases.Add(type, [3, 1, 2]);
            cases.Add(type, [1, 1, 1, 5]);
            cases.Add(type, []);
        }

        return cases;
    }

    [Theory]
    [MemberData(nameof(RoundTripCases))]
    public void WriteRead_RoundTripsValuesAndShape(DataType type, int[] shape)
    {
        string path = PathOf("tensor.npy");
        float[] values = Ramp(Tensor.ElementCountOf(shape));
        using Tensor written = Tensor.FromSingles(type, values, shape);

        NpyFile.Write(path, written);
        using Tensor read = NpyFile.Read(path);

        Assert.Equal(type, read.DataType);
        Assert.Equal(shape, read.Shape.ToArray());
        Assert.Equal(written.ToSingleArray(), read.ToSingleArray());
    }

    [Fact]
    public void Write_Float32_MatchesNumpyLayout()
    {
        string path = PathOf("layout.npy");
        using Tensor tensor = Tensor.FromSingles(DataType.Float32, [1f, -2f, 0.5f, 3f, 4f, 5f], 2, 3);

        NpyFile.Write(path, tensor);
        byte[] bytes = File.ReadAllBytes(path);

        Assert.Equal(s_magic, bytes[..6]);
        Assert.Equal(1, bytes[6]);
        Assert.Equal(0, bytes[7]);
        int headerLength = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8, 2));
        Assert.Equal(0, (10 + headerLength) % 64);
        string header = Encoding.ASCII.GetString(bytes, 10, headerLength);
        Assert.Equal("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", header.TrimEnd(' ', '\n'));
        Assert.EndsWith("\n", header);
        Assert.Equal(10 + headerLength + (6 * 4), bytes.Length);
        Assert.Equal(-2f, BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(10 + headerLength + 4, 4)));
    }

    [Fact]
    public void Read_HandBuiltVersion1_ReturnsValues()
    {
        string path = PathOf("v1.npy");
        byte[] data = SinglesLittleEndian(1.5f, -2.25f, 0f, 1e-3f, 7f, -8f);
        File.WriteAllBytes(path, NpyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", data, alignTo64: true));

        using Tensor tensor = NpyFile.Read(path);

        Assert.Equal(DataType.Float32, tensor.DataType);
        Assert.Equal([3, 2], tensor.Shape.ToArray());
        Assert.Equal([1.5f, -2.25f, 0f, 1e-3f, 7f, -8f], tensor.ToSingleArray());
    }

    [Fact]
    public void Read_UnpaddedHeader_ReturnsValues()
    {
        string path = PathOf("unpadded.npy");
        byte[] data = SinglesLittleEndian(4f, 5f);
        File.WriteAllBytes(path, NpyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", data, alignTo64: false));

        using Tensor tensor = NpyFile.Read(path);

        Assert.Equal([2], tensor.Shape.ToArray());
        Assert.Equal([4f, 5f], tensor.ToSingleArray());
    }

    [Fact]
    public void Read_HandBuiltVersion2Float16_ReturnsValues()
    {
        string path = PathOf("v2.npy");

        // binary16 bit patterns of 1, -2, 0.5 and 65504 (the largest finite value).
        byte[] data = [0x00, 0x3C, 0x00, 0xC0, 0x00, 0x38, 0xFF, 0x7B];
        File.WriteAllBytes(path, NpyBytes(2, "{'descr': '<f2', 'fortran_order': False, 'shape': (4,), }", data, alignTo64: true));

        using Tensor tensor = NpyFile.Read(path);

        Assert.Equal(DataType.Float16, tensor.DataType);
        Assert.Equal([4], tensor.Shape.ToArray());
        Assert.Equal([1f, -2f, 0.5f, 65504f], tensor.ToSingleArray());
    }

    [Fact]
    public void ReadHeader_ReturnsTypeAndShape()
    {
        string path = PathOf("header.npy");
        using Tensor tensor = Tensor.Zeros(DataType.Float16, 4, 0, 2);
        NpyFile.Write(path, tensor);

        (DataType type, int[] shape) = NpyFile.ReadHeader(path);

        Assert.Equal(DataType.Float16, type);
        Assert.Equal([4, 0, 2], shape);
    }

    [Fact]
    public void Write_BFloat16_ThrowsNotSupported()
    {
        string path = PathOf("bf16.npy");
        using Tensor tensor = Tensor.Zeros(DataType.BFloat16, 2);

        var error = Assert.Throws<NotSupportedException>(() => NpyFile.Write(path, tensor));

        Assert.Contains("bfloat16", error.Message);
        Assert.Empty(_folder.GetFiles());
    }

    [Fact]
    public void Read_MissingFile_ThrowsFileNotFound()
    {
        string path = PathOf("missing.npy");

        var error = Assert.Throws<FileNotFoundException>(() => NpyFile.Read(path));

        Assert.Equal(path, error.FileName);
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void Read_EmptyFile_NamesProblem()
    {
        string path = PathOf("empty.npy");
        File.WriteAllBytes(path, []);

        AssertFormatError(path, "empty", () => NpyFile.Read(path));
    }

    [Fact]
    public void Read_WrongMagic_NamesProblem()
    {
        string path = PathOf("magic.npy");
        File.WriteAllBytes(path, Encoding.ASCII.GetBytes("PK\u0003\u0004 this is a zip file"));

        AssertFormatError(path, "magic", () => NpyFile.Read(path));
    }

    [Fact]
    public void Read_UnsupportedVersion_NamesVersion()
    {
        string path = PathOf("version.npy");
        byte[] bytes = NpyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", SinglesLittleEndian(1f), alignTo64: true);
        bytes[6] = 4;
        File.WriteAllBytes(path, bytes);

        AssertFormatError(path, "version 4.0", () => NpyFile.Read(path));
    }

    [Fact]
    public void Read_TruncatedHeader_NamesLengths()
    {
        string path = PathOf("short-header.npy");
        byte[] bytes = NpyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", [], alignTo64: true);
        File.WriteAllBytes(path, bytes[..40]);

        AssertFormatError(path, "header is truncated: it declares 118 bytes, the file has 30", () => NpyFile.Read(path));
    }

    [Fact]
    public void Read_HeaderWithoutShape_NamesMissingKeys()
    {
        string path = PathOf("no-shape.npy");
        File.WriteAllBytes(path, NpyBytes(1, "{'descr': '<f4', 'fortran_order': False, }", SinglesLittleEndian(1f), alignTo64: true));

        AssertFormatError(path, "'shape'", () => NpyFile.Read(path));
    }

    [Fact]
    public void Read_Float64_NamesDtype()
    {
        string path = PathOf("f8.npy");
        File.WriteAllBytes(path, NpyBytes(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", new byte[8], alignTo64: true));

        AssertFormatError(path, "unsupported dtype '<f8'", () => NpyFile.Read(path));
    }

    [Fact]
    public void Read_FortranOrder_NamesProblem()
    {
        string path = PathOf("fortran.npy");
        File.WriteAllBytes(path, NpyBytes(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", SinglesLittleEndian(1f, 2f, 3f, 4f), alignTo64: true));

        AssertFormatError(path, "Fortran order", () => NpyFile.Read(path));
    }

    [Fact]
    public void Read_TruncatedData_NamesByteCounts()
    {
        string path = PathOf("short-data.npy");
        File.WriteAllBytes(path, NpyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", SinglesLittleEndian(1f, 2f, 3f), alignTo64: true));

        AssertFormatError(path, "needs 152 bytes, the file has 140", () => NpyFile.Read(path));
    }

    [Fact]
    public void Write_StorageFailsMidway_LeavesNoFile()
    {
        string path = PathOf("failed.npy");
        using var tensor = new Tensor(new FailingStorage(200_000, failAt: 100_000), 200_000);

        Assert.Throws<InvalidOperationException>(() => NpyFile.Write(path, tensor));

        Assert.Empty(_folder.GetFiles());
    }

    [Fact]
    public void Write_StorageFailsMidway_KeepsPreviousFile()
    {
        string path = PathOf("kept.npy");
        using Tensor previous = Tensor.FromSingles(DataType.Float32, [9f, 8f], 2);
        NpyFile.Write(path, previous);
        using var failing = new Tensor(new FailingStorage(200_000, failAt: 100_000), 200_000);

        Assert.Throws<InvalidOperationException>(() => NpyFile.Write(path, failing));

        using Tensor read = NpyFile.Read(path);
        Assert.Equal([9f, 8f], read.ToSingleArray());
        Assert.Single(_folder.GetFiles());
    }

    [Fact]
    public void Create_DisposeWithoutCommit_LeavesNoFiles()
    {
        string path = PathOf("pending.npy");

        using (PendingTensorFile pending = NpyFile.Create(path, DataType.Float32, 3, 4))
        {
            pending.Tensor.Storage.Write(0, [1f, 2f, 3f]);
            Assert.Single(_folder.GetFiles());
            Assert.False(File.Exists(path));
        }

        Assert.Empty(_folder.GetFiles());
    }

    [Fact]
    public void Create_Commit_LeavesOnlyFinalFile()
    {
        string path = PathOf("committed.npy");

        using (PendingTensorFile pending = NpyFile.Create(path, DataType.Float16, 2, 3))
        {
            pending.Tensor.Storage.Write(3, [1f, -0.5f, 2f]);
            pending.Commit();
        }

        Assert.Equal([path], _folder.GetFiles().Select(f => f.FullName));
        using Tensor read = NpyFile.Read(path);
        Assert.Equal([2, 3], read.Shape.ToArray());
        Assert.Equal([0f, 0f, 0f, 1f, -0.5f, 2f], read.ToSingleArray());
    }

    private string PathOf(string name) => Path.Combine(_folder.FullName, name);

    private static void AssertFormatError(string path, string expectedProblem, Action read)
    {
        var error = Assert.Throws<FileFormatException>(read);
        Assert.StartsWith(path, error.Message);
        Assert.Contains(expectedProblem, error.Message);
        Assert.Equal(path, error.FilePath);
    }

    private static float[] Ramp(long count)
    {
        var values = new float[count];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = (i * 0.37f) - 1.5f;
        }

        return values;
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

    /// <summary>Builds an .npy file by the format's rules: magic, version, header length, header text, data.</summary>
    private static byte[] NpyBytes(int major, string dictionary, byte[] data, bool alignTo64)
    {
        int lengthBytes = major == 1 ? 2 : 4;
        int preamble = s_magic.Length + 2 + lengthBytes;
        int padding = alignTo64 ? (64 - ((preamble + dictionary.Length + 1) % 64)) % 64 : 0;
        byte[] text = Encoding.ASCII.GetBytes(dictionary + new string(' ', padding) + "\n");

        var bytes = new List<byte>(s_magic) { (byte)major, 0 };
        if (major == 1)
        {
            bytes.Add((byte)(text.Length & 0xFF));
            bytes.Add((byte)(text.Length >> 8));
        }
        else
        {
            var length = new byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(length, (uint)text.Length);
            bytes.AddRange(length);
        }

        bytes.AddRange(text);
        bytes.AddRange(data);
        return [.. bytes];
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
