using PowerRetention.Kernels;
using PowerRetention.Kernels.IO;

namespace PowerRetention.Cli;

/// <summary>
/// The output Y of a run, written in place through a writable mapping of a temporary file.
/// <see cref="Commit"/> gives the file its final name; disposing without committing deletes it,
/// so a failed or cancelled run leaves nothing under the output name.
/// </summary>
internal sealed class OutputFile : IDisposable
{
    /// <summary>Name of the output tensor in a .safetensors file.</summary>
    public const string SafetensorsTensorName = "y";

    private readonly PendingTensorFile? _npy;
    private readonly SafetensorsPendingFile? _safetensors;

    private OutputFile(PendingTensorFile? npy, SafetensorsPendingFile? safetensors, Tensor tensor)
    {
        _npy = npy;
        _safetensors = safetensors;
        Tensor = tensor;
    }

    /// <summary>The writable tensor over the file's data.</summary>
    public Tensor Tensor { get; }

    /// <summary>Returns whether <paramref name="path"/> names a .safetensors file rather than an .npy file.</summary>
    /// <exception cref="UsageException">The extension is neither .npy nor .safetensors.</exception>
    public static bool IsSafetensors(string path)
    {
        string extension = Path.GetExtension(path);
        if (extension.Equals(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        if (extension.Equals(".npy", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        throw new UsageException($"--out {path} must end in .npy or .safetensors.");
    }

    /// <summary>Checks that a file at <paramref name="path"/> can hold an output of the given type.</summary>
    /// <exception cref="UsageException">The extension is unsupported, or the type is bfloat16 and the file is .npy.</exception>
    public static void CheckFormat(string path, DataType dataType)
    {
        if (!IsSafetensors(path) && dataType == DataType.BFloat16)
        {
            throw new UsageException($"the inputs are bf16 but .npy has no bfloat16 dtype. Write the output to a .safetensors file (--out {Path.ChangeExtension(path, ".safetensors")}).");
        }
    }

    /// <summary>Creates the temporary file, zero-filled, with the given type and shape.</summary>
    /// <exception cref="UsageException">The extension is unsupported, or the type is bfloat16 and the file is .npy.</exception>
    public static OutputFile Create(string path, DataType dataType, int[] shape)
    {
        CheckFormat(path, dataType);
        if (IsSafetensors(path))
        {
            SafetensorsPendingFile safetensors = SafetensorsFile.Create(path, [(SafetensorsTensorName, dataType, shape)]);
            return new OutputFile(null, safetensors, safetensors[SafetensorsTensorName]);
        }

        PendingTensorFile npy = NpyFile.Create(path, dataType, shape);
        return new OutputFile(npy, null, npy.Tensor);
    }

    /// <summary>Flushes the file and moves it to its final name.</summary>
    public void Commit()
    {
        _npy?.Commit();
        _safetensors?.Commit();
    }

    /// <summary>Deletes the temporary file unless it was committed.</summary>
    public void Dispose()
    {
        _npy?.Dispose();
        _safetensors?.Dispose();
    }
}
