namespace PowerRetention.Kernels.IO;

/// <summary>
/// Writes a file under a temporary name in the target folder and moves it to the final name only
/// when complete, so a failed or cancelled write never leaves a partial file under the final name.
/// </summary>
public static class AtomicFile
{
    /// <summary>Writes a file through <paramref name="write"/>, which receives a stream over a temporary file.</summary>
    public static void Write(string path, Action<FileStream> write)
    {
        string temporary = TemporaryPathFor(path);
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }

            File.Move(temporary, path, overwrite: true);
        }
        catch
        {
            TryDelete(temporary);
            throw;
        }
    }

    /// <summary>Returns an unused temporary path beside <paramref name="path"/>.</summary>
    public static string TemporaryPathFor(string path)
    {
        string full = Path.GetFullPath(path);
        string folder = Path.GetDirectoryName(full) ?? ".";
        if (!Directory.Exists(folder))
        {
            throw new DirectoryNotFoundException($"Cannot write {path}: folder {folder} does not exist.");
        }

        return Path.Combine(folder, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.partial");
    }

    /// <summary>Deletes a file if it exists, ignoring a failure to do so.</summary>
    public static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
