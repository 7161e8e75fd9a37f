namespace PowerRetention.Kernels.IO;

/// <summary>
/// A safetensors file being written in place through one writable memory mapping under a temporary
/// name. <see cref="Commit"/> flushes it and gives it its final name. Disposing without committing
/// deletes it, so an incomplete output never appears under the final name.
/// </summary>
public sealed class SafetensorsPendingFile : IDisposable
{
    private readonly string _temporaryPath;
    private readonly SafetensorsMapping _mapping;
    private readonly Dictionary<string, Tensor> _tensors;
    private bool _mappingReleased;
    private bool _committed;
    private bool _disposed;

    private SafetensorsPendingFile(string path, string temporaryPath, SafetensorsMapping mapping, Dictionary<string, Tensor> tensors)
    {
        FinalPath = path;
        _temporaryPath = temporaryPath;
        _mapping = mapping;
        _tensors = tensors;
    }

    /// <summary>The name the file gets on commit.</summary>
    public string FinalPath { get; }

    /// <summary>The file's name until commit: other processes may map it to write their rows.</summary>
    public string TemporaryPath => _temporaryPath;

    /// <summary>Writable tensors over the file's data, by name. Commit and Dispose dispose them.</summary>
    public IReadOnlyDictionary<string, Tensor> Tensors => _tensors;

    /// <summary>Returns the writable tensor of the given name.</summary>
    /// <exception cref="KeyNotFoundException">No tensor of that name was created.</exception>
    public Tensor this[string name] =>
        _tensors.TryGetValue(name, out Tensor? tensor)
            ? tensor
            : throw new KeyNotFoundException($"{FinalPath}: no tensor named '{name}' in the pending file, which contains {string.Join(", ", _tensors.Keys.Order(StringComparer.Ordinal))}.");

    internal static unsafe SafetensorsPendingFile Create(string path, IReadOnlyList<(string Name, DataType Type, int[] Shape)> tensors, byte[] header, long dataBytes)
    {
        string temporary = AtomicFile.TemporaryPathFor(path);
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.Read))
            {
                stream.Write(header);
                stream.SetLength(header.Length + dataBytes);
            }

            var mapping = new SafetensorsMapping(MappedRegion.Open(temporary, writable: true));
            var wrapped = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            try
            {
                long offset = header.Length;
                foreach ((string name, DataType type, int[] shape) in tensors)
                {
                    long count = Tensor.ElementCountOf(shape);
                    IDisposable lease = mapping.Lease();
                    var storage = new UnmanagedStorage(mapping.Region.Pointer + offset, type, count, writable: true, lease);
                    wrapped.Add(name, new Tensor(storage, shape));
                    offset += count * type.SizeInBytes();
                }

                return new SafetensorsPendingFile(path, temporary, mapping, wrapped);
            }
            catch
            {
                foreach (Tensor tensor in wrapped.Values)
                {
                    tensor.Dispose();
                }

                mapping.Release();
                throw;
            }
        }
        catch
        {
            AtomicFile.TryDelete(temporary);
            throw;
        }
    }

    /// <summary>Unmaps the file, flushes it to disk and moves it to <see cref="FinalPath"/>.</summary>
    /// <exception cref="ObjectDisposedException">The file was already committed or disposed.</exception>
    /// <exception cref="IOException">The flush or the rename failed. Dispose still deletes the temporary file.</exception>
    public void Commit()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ReleaseMapping();
        using (var stream = new FileStream(_temporaryPath, FileMode.Open, FileAccess.ReadWrite))
        {
            stream.Flush(flushToDisk: true);
        }

        File.Move(_temporaryPath, FinalPath, overwrite: true);
        _committed = true;
        _disposed = true;
    }

    /// <summary>Disposes the tensors and deletes the temporary file unless it was committed.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        ReleaseMapping();
        if (!_committed)
        {
            AtomicFile.TryDelete(_temporaryPath);
        }
    }

    // The tensors' leases and the creator reference are all released here, so the file is unmapped
    // before it is renamed or deleted.
    private void ReleaseMapping()
    {
        if (_mappingReleased)
        {
            return;
        }

        _mappingReleased = true;
        foreach (Tensor tensor in _tensors.Values)
        {
            tensor.Dispose();
        }

        _mapping.Release();
    }
}
