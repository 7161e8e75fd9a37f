using PowerRetention.Kernels;
using PowerRetention.Kernels.IO;

namespace PowerRetention.Cli;

/// <summary>Reads and writes the state files of --initial-state and --final-state through <see cref="StateFile"/>.</summary>
internal static class StateFiles
{
    /// <summary>Reads a state file.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="FileFormatException">The file is not a valid state file.</exception>
    /// <exception cref="UsageException">The file exists but cannot be read.</exception>
    public static RetentionState Read(string path)
    {
        try
        {
            return StateFile.Read(path);
        }
        catch (IOException ex) when (ex is not FileFormatException and not FileNotFoundException and not DirectoryNotFoundException)
        {
            throw new UsageException($"{path}: cannot read the state file: {ex.Message}");
        }
    }

    /// <summary>Writes a state file, which appears under <paramref name="path"/> only once complete.</summary>
    public static void Write(string path, RetentionState state) => StateFile.Write(path, state);
}
