namespace PowerRetention.Kernels.IO;

/// <summary>
/// An output file being written in place through a writable memory mapping under a temporary name.
/// <see cref="Commit"/> flushes it and gives it its final name; disposing without committing deletes
/// it, so an incomplete output never appears under the final name.
/// </summary>
public sealed class PendingTensorFile : IDisposable
{
    private readonly string _temporaryPath;
    private bool _committed;
    private bool _disposed;

    private PendingTensorFile(string path, string temporaryPath, Tensor tensor)
    {
        FinalPath = path;
        _temporaryPath = temporaryPath;
        Tensor = tensor;
    }

    /// <summary>The name the file gets on commit.</summary>
    public string FinalPath { get; }

    /// <summary>The file's name until commit: other processes may map it to write their rows.</summary>
    public string TemporaryPath => _temporaryPath;

    /// <summary>The writable tensor over the file's data.</summary>
    public Tensor Tensor { get; }

    internal static PendingTensorFile Create(string path, byte[] header, long dataBytes, Func<string, MappedRegion, Tensor> wrap)
    {
        string temporary = AtomicFile.TemporaryPathFor(path);
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.Read))
            {
                stream.Write(header);
                stream.SetLength(header.Length + dataBytes);
            }

            MappedRegion region = MappedRegion.Open(temporary, writable: true);
            try
            {
                return new PendingTensorFile(path, temporary, wrap(temporary, region));
            }
            catch
            {
                region.Dispose();
                throw;
            }
        }
        catch
        {
            AtomicFile.TryDelete(temporary);
            throw;
        }
    }

    /// <summary>Unmaps the file and moves it to <see cref="FinalPath"/>.</summary>
    public void Commit()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Tensor.Dispose();
        using (var stream = new FileStream(_temporaryPath, FileMode.Open, FileAccess.ReadWrite))
        {
            stream.Flush(flushToDisk: true);
        }

        File.Move(_temporaryPath, FinalPath, overwrite: true);
        _committed = true;
        _disposed = true;
    }

    /// <summary>Deletes the temporary file unless it was committed.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        Tensor.Dispose();
        if (!_committed)
        {
            AtomicFile.TryDelete(_temporaryPath);
        }
    }
}
