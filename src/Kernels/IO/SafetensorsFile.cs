using System.Buffers.Binary;

namespace PowerRetention.Kernels.IO;

/// <summary>
/// Reads and writes safetensors files of F32, F16 and BF16 tensors: an 8-byte little-endian header
/// length, a UTF-8 JSON header and a data buffer of little-endian C-order tensors. Reads memory-map the
/// file, and writes go through a temporary file that is renamed when complete.
/// </summary>
public static class SafetensorsFile
{
    /// <summary>
    /// Memory-maps a safetensors file and checks its header. A tensor of another dtype (such as F64 or
    /// I32) is listed, and only fails when it is requested.
    /// </summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="FileFormatException">
    /// The file is shorter than 8 bytes, the header length exceeds the file, the header is not valid JSON,
    /// or an entry lacks dtype, shape or data_offsets, has a negative dimension, or has offsets outside the
    /// data buffer or inconsistent with its shape and dtype.
    /// </exception>
    public static unsafe SafetensorsReader Open(string path)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"{path}: file not found.", path);
        }

        long fileLength = new FileInfo(path).Length;
        if (fileLength < SafetensorsHeader.LengthPrefixBytes)
        {
            throw new FileFormatException(path, $"the file has {fileLength} bytes, fewer than the {SafetensorsHeader.LengthPrefixBytes}-byte header length of a safetensors file.");
        }

        MappedRegion region = MappedRegion.Open(path, writable: false);
        try
        {
            var prefix = new ReadOnlySpan<byte>(region.Pointer, SafetensorsHeader.LengthPrefixBytes);
            ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
            long afterPrefix = region.Length - SafetensorsHeader.LengthPrefixBytes;
            if (headerLength > (ulong)afterPrefix)
            {
                throw new FileFormatException(path, $"the header length is {headerLength} bytes, but only {afterPrefix} bytes follow the length prefix.");
            }

            if (headerLength > int.MaxValue)
            {
                throw new FileFormatException(path, $"the header length is {headerLength} bytes, more than the {int.MaxValue} bytes a header may have here.");
            }

            byte[] json = new ReadOnlySpan<byte>(region.Pointer + SafetensorsHeader.LengthPrefixBytes, (int)headerLength).ToArray();
            long dataStart = SafetensorsHeader.LengthPrefixBytes + (long)headerLength;
            SafetensorsHeader header = SafetensorsHeader.Parse(path, json, region.Length - dataStart);
            return new SafetensorsReader(path, new SafetensorsMapping(region), header, dataStart);
        }
        catch
        {
            region.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Writes tensors, each in its own data type, with names in ordinal order and an optional metadata
    /// object. The file appears under <paramref name="path"/> only once it is complete.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="tensors"/> or one of its tensors is null.</exception>
    /// <exception cref="ArgumentException">A name is "__metadata__" or a metadata value is null.</exception>
    /// <exception cref="DirectoryNotFoundException">The target folder does not exist.</exception>
    public static void Write(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var ordered = new List<(string Name, Tensor Tensor)>(tensors.Count);
        foreach (KeyValuePair<string, Tensor> entry in tensors.OrderBy(pair => pair.Key, StringComparer.Ordinal))
        {
            if (entry.Value is null)
            {
                throw new ArgumentNullException(nameof(tensors), $"Tensor '{entry.Key}' is null.");
            }

            ordered.Add((entry.Key, entry.Value));
        }

        (byte[] header, _) = SafetensorsHeader.Build([.. ordered.Select(e => (e.Name, e.Tensor.DataType, e.Tensor.Shape.ToArray()))], metadata);
        AtomicFile.Write(path, stream =>
        {
            stream.Write(header);
            foreach ((_, Tensor tensor) in ordered)
            {
                TensorBytes.CopyTo(tensor, stream);
            }
        });
    }

    /// <summary>
    /// Creates a zero-filled safetensors file with the given tensors (stored back to back in ordinal
    /// name order) under a temporary name and maps every tensor writable. The file gets its final name
    /// when <see cref="SafetensorsPendingFile.Commit"/> is called.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="tensors"/> or a shape is null.</exception>
    /// <exception cref="ArgumentException">A name is "__metadata__" or appears twice, a shape has a negative dimension, or a metadata value is null.</exception>
    /// <exception cref="DirectoryNotFoundException">The target folder does not exist.</exception>
    public static SafetensorsPendingFile Create(string path, IReadOnlyList<(string Name, DataType Type, int[] Shape)> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        foreach ((string name, _, int[] shape) in tensors)
        {
            ArgumentNullException.ThrowIfNull(name, nameof(tensors));
            ArgumentNullException.ThrowIfNull(shape, nameof(tensors));
        }

        List<(string Name, DataType Type, int[] Shape)> ordered = [.. tensors.OrderBy(t => t.Name, StringComparer.Ordinal).Select(t => (t.Name, t.Type, (int[])t.Shape.Clone()))];
        (byte[] header, long dataBytes) = SafetensorsHeader.Build(ordered, metadata);
        return SafetensorsPendingFile.Create(path, ordered, header, dataBytes);
    }
}
