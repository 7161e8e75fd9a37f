using PowerRetention.Kernels;
using PowerRetention.Kernels.IO;

namespace PowerRetention.Cli;

/// <summary>
/// The memory-mapped input tensors of a run, read from .npy files or from one .safetensors file.
/// Disposing unmaps them. Log-gates of any float type are converted to float32.
/// </summary>
internal sealed class InputFiles : IDisposable
{
    private readonly List<IDisposable> _owned = [];

    private InputFiles()
    {
    }

    /// <summary>Queries, (b, t, hq, d).</summary>
    public Tensor Q { get; private set; } = null!;

    /// <summary>Keys, (b, t, h, d).</summary>
    public Tensor K { get; private set; } = null!;

    /// <summary>Values, (b, t, h, e).</summary>
    public Tensor V { get; private set; } = null!;

    /// <summary>Log-gates as float32, (b, t, h), or null without gating.</summary>
    public Tensor? LogG { get; private set; }

    /// <summary>Full paths of every file read.</summary>
    public List<string> Paths { get; } = [];

    /// <summary>Maps the .npy files of Q, K, V and optionally log_G.</summary>
    /// <exception cref="FileNotFoundException">A file does not exist.</exception>
    /// <exception cref="FileFormatException">A file is not a supported .npy file.</exception>
    /// <exception cref="UsageException">A file exists but cannot be read.</exception>
    public static InputFiles OpenNpy(string qPath, string kPath, string vPath, string? logGPath)
    {
        var inputs = new InputFiles();
        try
        {
            inputs.Q = inputs.ReadNpy(qPath);
            inputs.K = inputs.ReadNpy(kPath);
            inputs.V = inputs.ReadNpy(vPath);
            if (logGPath is not null)
            {
                inputs.LogG = inputs.ToFloat32(inputs.ReadNpy(logGPath));
            }

            return inputs;
        }
        catch
        {
            inputs.Dispose();
            throw;
        }
    }

    /// <summary>Maps a .safetensors file containing tensors q, k, v and optionally log_g.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="FileFormatException">The file is malformed, lacks q, k or v, or a tensor has an unsupported dtype.</exception>
    /// <exception cref="UsageException">The file exists but cannot be read.</exception>
    public static InputFiles OpenSafetensors(string path)
    {
        var inputs = new InputFiles();
        try
        {
            SafetensorsReader reader = inputs.ReadFile(path, SafetensorsFile.Open);
            inputs._owned.Add(reader);
            inputs.Q = inputs.TakeTensor(reader, "q", required: true)!;
            inputs.K = inputs.TakeTensor(reader, "k", required: true)!;
            inputs.V = inputs.TakeTensor(reader, "v", required: true)!;
            Tensor? logG = inputs.TakeTensor(reader, "log_g", required: false);
            inputs.LogG = logG is null ? null : inputs.ToFloat32(logG);
            return inputs;
        }
        catch
        {
            inputs.Dispose();
            throw;
        }
    }

    /// <summary>Unmaps every input.</summary>
    public void Dispose()
    {
        for (int i = _owned.Count - 1; i >= 0; i--)
        {
            _owned[i].Dispose();
        }

        _owned.Clear();
    }

    private Tensor ReadNpy(string path)
    {
        Tensor tensor = ReadFile(path, NpyFile.Read);
        _owned.Add(tensor);
        return tensor;
    }

    private Tensor? TakeTensor(SafetensorsReader reader, string name, bool required)
    {
        if (!reader.TryGetTensor(name, out Tensor? tensor))
        {
            if (!required)
            {
                return null;
            }

            string found = reader.TensorNames.Count == 0 ? "none" : string.Join(", ", reader.TensorNames);
            throw new FileFormatException(reader.FilePath, $"no tensor named '{name}', but a run input needs tensors q, k, v and optionally log_g (found: {found}).");
        }

        _owned.Add(tensor);
        return tensor;
    }

    private Tensor ToFloat32(Tensor logG)
    {
        if (logG.DataType == DataType.Float32)
        {
            return logG;
        }

        Tensor converted = logG.ConvertTo(DataType.Float32);
        _owned.Add(converted);
        return converted;
    }

    private T ReadFile<T>(string path, Func<string, T> read)
    {
        Paths.Add(Path.GetFullPath(path));
        try
        {
            return read(path);
        }
        catch (IOException ex) when (ex is not FileFormatException and not FileNotFoundException and not DirectoryNotFoundException)
        {
            throw new UsageException($"{path}: cannot read the file: {ex.Message}");
        }
    }
}
