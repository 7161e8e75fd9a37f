using System.IO.MemoryMappedFiles;

namespace PowerRetention.Kernels.IO;

/// <summary>A whole file mapped into memory, kept alive until disposed.</summary>
internal sealed unsafe class MappedRegion : IDisposable
{
    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private bool _disposed;

    private MappedRegion(MemoryMappedFile file, MemoryMappedViewAccessor view, long length)
    {
        _file = file;
        _view = view;
        Length = length;
        byte* pointer = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        Pointer = pointer + _view.PointerOffset;
    }

    /// <summary>Start of the file's bytes.</summary>
    public byte* Pointer { get; }

    /// <summary>File length in bytes.</summary>
    public long Length { get; }

    /// <summary>Maps an existing file read-only, or read-write when <paramref name="writable"/> is set.</summary>
    public static MappedRegion Open(string path, bool writable)
    {
        long length = new FileInfo(path).Length;
        if (length == 0)
        {
            throw new FileFormatException(path, "the file is empty.");
        }

        var access = writable ? MemoryMappedFileAccess.ReadWrite : MemoryMappedFileAccess.Read;
        using var stream = new FileStream(path, FileMode.Open, writable ? FileAccess.ReadWrite : FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        var file = MemoryMappedFile.CreateFromFile(stream, null, 0, access, HandleInheritability.None, leaveOpen: false);
        try
        {
            return new MappedRegion(file, file.CreateViewAccessor(0, 0, access), length);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _file.Dispose();
    }
}
