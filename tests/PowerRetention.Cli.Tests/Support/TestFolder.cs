namespace PowerRetention.Cli.Tests.Support;

/// <summary>A fresh temporary folder, deleted with its files on dispose.</summary>
internal sealed class TestFolder : IDisposable
{
    public TestFolder()
    {
        FullPath = Path.Combine(Path.GetTempPath(), "powerret-cli-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(FullPath);
    }

    public string FullPath { get; }

    /// <summary>Returns the path of a file in the folder.</summary>
    public string File(string name) => Path.Combine(FullPath, name);

    /// <summary>Returns the names of every file in the folder and below, relative to it.</summary>
    public string[] ListFiles() =>
        Directory.GetFiles(FullPath, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(FullPath, f)).Order(StringComparer.Ordinal).ToArray();

    public void Dispose()
    {
        try
        {
            Directory.Delete(FullPath, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
