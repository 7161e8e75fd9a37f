using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace PowerRetention.Kernels.IO;

/// <summary>
/// Reads and writes NumPy .npy files of little-endian float32 (&lt;f4) or float16 (&lt;f2) in C order.
/// Reads memory-map the file; writes go through a temporary file that is renamed when complete.
/// </summary>
public static partial class NpyFile
{
    private static readonly byte[] s_magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>Memory-maps an .npy file as a read-only tensor; dispose the tensor to unmap it.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="FileFormatException">The header is malformed, the dtype is unsupported, the array is in Fortran order, or the data is truncated.</exception>
    public static Tensor Read(string path)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"{path}: file not found.", path);
        }

        MappedRegion region = MappedRegion.Open(path, writable: false);
        try
        {
            (DataType dataType, int[] shape, long dataOffset) = ParseHeader(path, region);
            return Wrap(path, region, dataType, shape, dataOffset, writable: false);
        }
        catch
        {
            region.Dispose();
            throw;
        }
    }

    /// <summary>Reads only the header: data type and shape.</summary>
    /// <exception cref="FileFormatException">The header is malformed or unsupported.</exception>
    public static (DataType DataType, int[] Shape) ReadHeader(string path)
    {
        using MappedRegion region = MappedRegion.Open(path, writable: false);
        (DataType dataType, int[] shape, _) = ParseHeader(path, region);
        return (dataType, shape);
    }

    /// <summary>Writes a float32 or float16 tensor; bfloat16 has no .npy dtype and is rejected.</summary>
    /// <exception cref="NotSupportedException">The tensor is bfloat16.</exception>
    public static void Write(string path, Tensor tensor)
    {
        byte[] header = BuildHeader(path, tensor.DataType, tensor.Shape);
        AtomicFile.Write(path, stream =>
        {
            stream.Write(header);
            TensorBytes.CopyTo(tensor, stream);
        });
    }

    /// <summary>
    /// Creates a zero-filled .npy file of the given type and shape under a temporary name and maps it
    /// writable; the file gets its final name when <see cref="PendingTensorFile.Commit"/> is called.
    /// </summary>
    public static PendingTensorFile Create(string path, DataType dataType, params int[] shape)
    {
        byte[] header = BuildHeader(path, dataType, shape);
        long dataBytes = checked(Tensor.ElementCountOf(shape) * dataType.SizeInBytes());
        return PendingTensorFile.Create(path, header, dataBytes, (temporary, region) =>
            Wrap(temporary, region, dataType, shape, header.Length, writable: true));
    }

    internal static unsafe Tensor Wrap(string path, MappedRegion region, DataType dataType, int[] shape, long dataOffset, bool writable)
    {
        long count = Tensor.ElementCountOf(shape);
        long needed = dataOffset + (count * dataType.SizeInBytes());
        if (region.Length < needed)
        {
            throw new FileFormatException(path, $"data is truncated: shape {Tensor.FormatShape(shape)} of {dataType.ShortName()} needs {needed} bytes, the file has {region.Length}.");
        }

        return new Tensor(new UnmanagedStorage(region.Pointer + dataOffset, dataType, count, writable, region), shape);
    }

    private static byte[] BuildHeader(string path, DataType dataType, ReadOnlySpan<int> shape)
    {
        string descr = dataType switch
        {
            DataType.Float32 => "<f4",
            DataType.Float16 => "<f2",
            _ => throw new NotSupportedException($"{path}: .npy has no bfloat16 dtype; write a .safetensors file instead."),
        };

        string dims = shape.Length == 1 ? $"{shape[0]}," : string.Join(", ", shape.ToArray());
        string dictionary = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}";

        // Version 1.0: magic, version, little-endian u16 header length; the header ends in a newline and
        // pads the data start to a multiple of 64 bytes.
        int unpadded = s_magic.Length + 2 + 2 + dictionary.Length + 1;
        int padding = (64 - (unpadded % 64)) % 64;
        string text = dictionary + new string(' ', padding) + "\n";
        var header = new byte[s_magic.Length + 4 + text.Length];
        s_magic.CopyTo(header, 0);
        header[6] = 1;
        header[7] = 0;
        BitConverter.TryWriteBytes(header.AsSpan(8, 2), (ushort)text.Length);
        Encoding.ASCII.GetBytes(text, header.AsSpan(10));
        return header;
    }

    private static unsafe (DataType DataType, int[] Shape, long DataOffset) ParseHeader(string path, MappedRegion region)
    {
        var bytes = new ReadOnlySpan<byte>(region.Pointer, (int)Math.Min(region.Length, int.MaxValue));
        if (bytes.Length < 10 || !bytes[..6].SequenceEqual(s_magic))
        {
            throw new FileFormatException(path, "not an .npy file (missing the \\x93NUMPY magic string).");
        }

        int major = bytes[6];
        int headerLength;
        int headerStart;
        if (major == 1)
        {
            headerLength = BitConverter.ToUInt16(bytes.Slice(8, 2));
            headerStart = 10;
        }
        else if (major is 2 or 3)
        {
            if (bytes.Length < 12)
            {
                throw new FileFormatException(path, "the .npy header is truncated.");
            }

            headerLength = checked((int)BitConverter.ToUInt32(bytes.Slice(8, 4)));
            headerStart = 12;
        }
        else
        {
            throw new FileFormatException(path, $"unsupported .npy format version {major}.{bytes[7]}.");
        }

        if (headerStart + headerLength > bytes.Length)
        {
            throw new FileFormatException(path, $"the .npy header is truncated: it declares {headerLength} bytes, the file has {bytes.Length - headerStart} after the preamble.");
        }

        string header = Encoding.Latin1.GetString(bytes.Slice(headerStart, headerLength));
        Match descr = DescrPattern().Match(header);
        Match fortran = FortranPattern().Match(header);
        Match shapeMatch = ShapePattern().Match(header);
        if (!descr.Success || !fortran.Success || !shapeMatch.Success)
        {
            throw new FileFormatException(path, $"malformed .npy header {header.Trim()}: expected 'descr', 'fortran_order' and 'shape'.");
        }

        DataType dataType = descr.Groups[1].Value switch
        {
            "<f4" => DataType.Float32,
            "<f2" => DataType.Float16,
            string other => throw new FileFormatException(path, $"unsupported dtype '{other}'; expected little-endian float32 '<f4' or float16 '<f2'."),
        };

        if (fortran.Groups[1].Value == "True")
        {
            throw new FileFormatException(path, "the array is in Fortran order; save it in C order (numpy.ascontiguousarray).");
        }

        var shape = new List<int>();
        foreach (string part in shapeMatch.Groups[1].Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out int dim))
            {
                throw new FileFormatException(path, $"malformed shape ({shapeMatch.Groups[1].Value}) in the .npy header.");
            }

            shape.Add(dim);
        }

        return (dataType, shape.ToArray(), headerStart + headerLength);
    }

    [GeneratedRegex(@"'descr'\s*:\s*'([^']*)'")]
    private static partial Regex DescrPattern();

    [GeneratedRegex(@"'fortran_order'\s*:\s*(True|False)")]
    private static partial Regex FortranPattern();

    [GeneratedRegex(@"'shape'\s*:\s*\(([^)]*)\)")]
    private static partial Regex ShapePattern();
}
