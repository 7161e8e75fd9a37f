using System.Diagnostics.CodeAnalysis;

namespace PowerRetention.Kernels.IO;

/// <summary>
/// An open safetensors file, memory-mapped once. Tensors returned by <see cref="GetTensor"/> read the
/// mapping in place and each keeps a reference to it, so a tensor stays valid after the reader is
/// disposed. The file is unmapped when the reader and every tensor taken from it are disposed.
/// </summary>
public sealed unsafe class SafetensorsReader : IDisposable
{
    private readonly SafetensorsMapping _mapping;
    private readonly SafetensorsHeader _header;
    private readonly long _dataStart;
    private readonly string[] _names;
    private bool _disposed;

    internal SafetensorsReader(string path, SafetensorsMapping mapping, SafetensorsHeader header, long dataStart)
    {
        FilePath = path;
        _mapping = mapping;
        _header = header;
        _dataStart = dataStart;
        _names = [.. header.Tensors.Keys.Order(StringComparer.Ordinal)];
    }

    /// <summary>The path the file was opened from.</summary>
    public string FilePath { get; }

    /// <summary>Names of every tensor in the file, in ordinal order, including those of unsupported dtypes.</summary>
    public IReadOnlyList<string> TensorNames => _names;

    /// <summary>The "__metadata__" entries of the header, empty when it has none.</summary>
    public IReadOnlyDictionary<string, string> Metadata => _header.Metadata;

    /// <summary>Returns true when the file has a tensor named <paramref name="name"/>.</summary>
    public bool Contains(string name) => _header.Tensors.ContainsKey(name);

    /// <summary>Returns the header entry of a tensor: its dtype, shape and byte range.</summary>
    /// <exception cref="KeyNotFoundException">The file has no tensor of that name.</exception>
    public SafetensorsTensorInfo GetInfo(string name) =>
        _header.Tensors.TryGetValue(name, out SafetensorsTensorInfo? info) ? info : throw NotFound(name);

    /// <summary>
    /// Returns a read-only tensor over the tensor's bytes in the mapping, without copying. Dispose the
    /// tensor to release its reference to the mapping.
    /// </summary>
    /// <exception cref="KeyNotFoundException">The file has no tensor of that name.</exception>
    /// <exception cref="FileFormatException">The tensor's dtype is not F32, F16 or BF16.</exception>
    /// <exception cref="ObjectDisposedException">The reader was disposed.</exception>
    public Tensor GetTensor(string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return Wrap(GetInfo(name));
    }

    /// <summary>
    /// Returns a read-only tensor over the tensor's bytes as <see cref="GetTensor"/> does, or false when
    /// the file has no tensor of that name.
    /// </summary>
    /// <exception cref="FileFormatException">The tensor exists but its dtype is not F32, F16 or BF16.</exception>
    /// <exception cref="ObjectDisposedException">The reader was disposed.</exception>
    public bool TryGetTensor(string name, [NotNullWhen(true)] out Tensor? tensor)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!_header.Tensors.TryGetValue(name, out SafetensorsTensorInfo? info))
        {
            tensor = null;
            return false;
        }

        tensor = Wrap(info);
        return true;
    }

    /// <summary>Releases the reader's reference to the mapping. Tensors already taken stay valid.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _mapping.Release();
    }

    private Tensor Wrap(SafetensorsTensorInfo info)
    {
        if (info.DataType is not DataType dataType)
        {
            throw new FileFormatException(FilePath, $"tensor '{info.Name}' has dtype {info.DtypeName}, but only F32, F16 and BF16 are supported.");
        }

        byte* data = _mapping.Region.Pointer + _dataStart + info.DataBegin;
        IDisposable lease = _mapping.Lease();
        try
        {
            return new Tensor(new UnmanagedStorage(data, dataType, info.ElementCount, writable: false, lease), info.ShapeArray);
        }
        catch
        {
            lease.Dispose();
            throw;
        }
    }

    private KeyNotFoundException NotFound(string name)
    {
        const int Listed = 10;
        string names = string.Join(", ", _names.Take(Listed).Select(n => $"'{n}'"));
        string more = _names.Length > Listed ? $" and {_names.Length - Listed} more" : string.Empty;
        string available = _names.Length == 0 ? "The file has no tensors" : $"The file contains {names}{more}";
        return new KeyNotFoundException($"{FilePath}: no tensor named '{name}'. {available}.");
    }
}
