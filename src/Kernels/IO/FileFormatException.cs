namespace PowerRetention.Kernels.IO;

/// <summary>A tensor or state file is malformed, truncated or of an unsupported kind.</summary>
public sealed class FileFormatException : IOException
{
    /// <summary>Creates an exception whose message starts with the file path.</summary>
    public FileFormatException(string path, string problem)
        : base($"{path}: {problem}")
    {
        FilePath = path;
    }

    /// <summary>Creates an exception whose message starts with the file path, with the underlying cause.</summary>
    public FileFormatException(string path, string problem, Exception innerException)
        : base($"{path}: {problem}", innerException)
    {
        FilePath = path;
    }

    /// <summary>The file that could not be read.</summary>
    public string FilePath { get; }
}
