using Microsoft.Extensions.Logging;

namespace PowerRetention.Kernels.Gpu;

/// <summary>
/// The compute backend a process chose, and why. Disposing it releases a GPU backend's device; the
/// shared CPU backend holds nothing.
/// </summary>
public sealed class BackendChoice : IDisposable
{
    /// <summary>Wraps a chosen backend and the reason it was chosen.</summary>
    public BackendChoice(IComputeBackend backend, string reason)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentException.ThrowIfNullOrWhiteSpace(reason);
        Backend = backend;
        Reason = reason;
    }

    /// <summary>The backend kernels run on.</summary>
    public IComputeBackend Backend { get; }

    /// <summary>Why this backend was chosen, for logs and status reports.</summary>
    public string Reason { get; }

    /// <summary>Releases the backend when it owns a device.</summary>
    public void Dispose() => (Backend as IDisposable)?.Dispose();

    /// <inheritdoc />
    public override string ToString() => $"{Backend.Name}: {Reason}";
}

/// <summary>Chooses a compute backend from a command-line or configuration value: auto, cpu or cuda.</summary>
public static partial class BackendSelector
{
    /// <summary>The accepted values of a backend choice.</summary>
    public static IReadOnlyList<string> Choices { get; } = ["auto", "cpu", "cuda"];

    /// <summary>
    /// Creates the backend named by <paramref name="choice"/> (case-insensitive): "cpu" is the CPU
    /// backend, "cuda" the first CUDA device, and "auto" the first CUDA device when one initialises
    /// and the CPU backend otherwise. The choice and its reason are logged when a logger is given.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="choice"/> is not auto, cpu or cuda.</exception>
    /// <exception cref="InvalidOperationException">"cuda" was chosen and no CUDA device can be used. The message names what is missing.</exception>
    public static BackendChoice Create(string choice, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(choice);
        BackendChoice result = choice.Trim().ToLowerInvariant() switch
        {
            "cpu" => new BackendChoice(CpuBackend.Instance, "the cpu backend was requested"),
            "cuda" => CreateCuda(),
            "auto" => CreateAuto(),
            _ => throw new ArgumentException($"Unknown compute backend '{choice}'; expected one of: {string.Join(", ", Choices)}.", nameof(choice)),
        };

        if (logger is not null)
        {
            LogChosen(logger, result.Backend.Name, choice, result.Reason);
        }

        return result;
    }

    private static BackendChoice CreateCuda()
    {
        GpuBackend backend = GpuBackend.CreateCuda();
        return new BackendChoice(backend, $"the cuda backend was requested; running on {backend.DeviceName}");
    }

    private static BackendChoice CreateAuto()
    {
        try
        {
            GpuBackend backend = GpuBackend.CreateCuda();
            return new BackendChoice(backend, $"a CUDA device initialised: {backend.DeviceName}");
        }
        catch (InvalidOperationException error)
        {
            return new BackendChoice(CpuBackend.Instance, $"{error.Message} Falling back to the cpu backend.");
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Compute backend {Backend} chosen for '{Choice}': {Reason}")]
    private static partial void LogChosen(ILogger logger, string backend, string choice, string reason);
}
