using System.Buffers.Binary;

namespace PowerRetention.Kernels.IO;

/// <summary>Opens tensors by path, whatever the format (.npy or .safetensors).</summary>
public static class TensorFiles
{
    /// <summary>Returns whether the path names a .safetensors file (by extension).</summary>
    public static bool IsSafetensors(string path) => path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase);

    /// <summary>Returns whether the path names an .npy file (by extension).</summary>
    public static bool IsNpy(string path) => path.EndsWith(".npy", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Maps an existing output file writable: a whole .npy file, or the tensor <paramref name="tensorName"/>
    /// of a .safetensors file. Workers use this to write their rows of an output created elsewhere.
    /// </summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="FileFormatException">The file is malformed or lacks the tensor.</exception>
    public static unsafe Tensor OpenWritable(string path, string tensorName = "y")
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"{path}: file not found.", path);
        }

        if (IsSafetensors(path) || !IsNpy(path) && LooksLikeSafetensors(path))
        {
            SafetensorsTensorInfo info;
            long dataStart;
            using (SafetensorsReader reader = SafetensorsFile.Open(path))
            {
                if (!reader.Contains(tensorName))
                {
                    throw new FileFormatException(path, $"no tensor named '{tensorName}'.");
                }

                info = reader.GetInfo(tensorName);
                dataStart = SafetensorsHeaderLength(path);
            }

            DataType dataType = info.DataType ?? throw new FileFormatException(path, $"tensor '{tensorName}' has unsupported dtype {info.DtypeName}.");
            MappedRegion region = MappedRegion.Open(path, writable: true);
            try
            {
                return new Tensor(new UnmanagedStorage(region.Pointer + dataStart + info.DataBegin, dataType, info.ElementCount, writable: true, region), info.Shape.ToArray());
            }
            catch
            {
                region.Dispose();
                throw;
            }
        }

        (DataType npyType, int[] shape) = NpyFile.ReadHeader(path);
        MappedRegion npyRegion = MappedRegion.Open(path, writable: true);
        try
        {
            long headerBytes = npyRegion.Length - (Tensor.ElementCountOf(shape) * npyType.SizeInBytes());
            return NpyFile.Wrap(path, npyRegion, npyType, shape, headerBytes, writable: true);
        }
        catch
        {
            npyRegion.Dispose();
            throw;
        }
    }

    // Start of the data buffer: the 8-byte length prefix plus the JSON header.
    private static long SafetensorsHeaderLength(string path)
    {
        Span<byte> prefix = stackalloc byte[8];
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        stream.ReadExactly(prefix);
        return 8 + (long)BinaryPrimitives.ReadUInt64LittleEndian(prefix);
    }

    // Temporary output names end in ".partial"; the header tells the format.
    private static bool LooksLikeSafetensors(string path)
    {
        Span<byte> start = stackalloc byte[6];
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        return stream.Read(start) == 6 && start[0] != 0x93;
    }
}
