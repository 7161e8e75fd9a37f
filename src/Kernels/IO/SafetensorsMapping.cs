namespace PowerRetention.Kernels.IO;

/// <summary>
/// A file mapping shared by several tensors through reference counting. The creator owns the first
/// reference and gives it up with <see cref="Release"/>. Each tensor keeps a lease from
/// <see cref="Lease"/>. The file is unmapped when the last reference is released.
/// </summary>
internal sealed class SafetensorsMapping(MappedRegion region)
{
    private int _references = 1;

    /// <summary>The mapped file.</summary>
    public MappedRegion Region { get; } = region;

    /// <summary>Adds a reference that is released when the returned lease is disposed.</summary>
    /// <exception cref="ObjectDisposedException">Every reference was already released and the file is unmapped.</exception>
    public IDisposable Lease()
    {
        while (true)
        {
            int current = Volatile.Read(ref _references);
            ObjectDisposedException.ThrowIf(current == 0, this);
            if (Interlocked.CompareExchange(ref _references, current + 1, current) == current)
            {
                return new MappingLease(this);
            }
        }
    }

    /// <summary>Releases one reference and unmaps the file when it was the last.</summary>
    public void Release()
    {
        if (Interlocked.Decrement(ref _references) == 0)
        {
            Region.Dispose();
        }
    }

    private sealed class MappingLease(SafetensorsMapping mapping) : IDisposable
    {
        private SafetensorsMapping? _mapping = mapping;

        // Disposing twice must not release a second reference that belongs to another owner.
        public void Dispose() => Interlocked.Exchange(ref _mapping, null)?.Release();
    }
}
