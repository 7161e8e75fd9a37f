using System.Runtime.InteropServices;

namespace PowerRetention.Kernels.Gpu;

/// <summary>What the CUDA driver reports on this machine.</summary>
/// <param name="IsUsable">True when the driver library loaded, initialised, and reports at least one device.</param>
/// <param name="DeviceCount">Devices the driver reports; 0 when it is not usable.</param>
/// <param name="Detail">What was found, or what is missing, in one phrase.</param>
public sealed record CudaDriverStatus(bool IsUsable, int DeviceCount, string Detail);

/// <summary>
/// Asks the CUDA driver library directly whether CUDA can run here, so that a missing library, a
/// machine without a device and a failing driver get different messages. ILGPU's own device
/// enumeration hides all three behind an empty device list.
/// </summary>
public static unsafe class CudaDriverProbe
{
    // cudaError_enum values from the CUDA driver API (cuda.h).
    private const int CudaSuccess = 0;
    private const int CudaErrorNoDevice = 100;

    private static readonly Lock s_lock = new();
    private static CudaDriverStatus? s_status;

    /// <summary>Library names tried in order: the versioned name the driver installs, then the development link.</summary>
    public static IReadOnlyList<string> LibraryNames { get; } =
        OperatingSystem.IsWindows() ? ["nvcuda.dll"] : ["libcuda.so.1", "libcuda.so"];

    /// <summary>Returns the driver status, probing once per process (cuInit is not undone).</summary>
    public static CudaDriverStatus Probe()
    {
        lock (s_lock)
        {
            return s_status ??= ProbeDriver(LibraryNames);
        }
    }

    /// <summary>Probes the driver through the first of <paramref name="libraryNames"/> that loads; not cached.</summary>
    internal static CudaDriverStatus ProbeDriver(IReadOnlyList<string> libraryNames)
    {
        IntPtr library = IntPtr.Zero;
        string? loadedName = null;
        foreach (string name in libraryNames)
        {
            if (NativeLibrary.TryLoad(name, out library))
            {
                loadedName = name;
                break;
            }
        }

        if (loadedName is null)
        {
            return new CudaDriverStatus(false, 0, $"no CUDA device: no CUDA driver library ({string.Join(" or ", libraryNames)}) was found; install the NVIDIA driver or choose the cpu backend");
        }

        // The library stays loaded: ILGPU loads the same one afterwards.
        if (!NativeLibrary.TryGetExport(library, "cuInit", out IntPtr initExport) ||
            !NativeLibrary.TryGetExport(library, "cuDeviceGetCount", out IntPtr countExport))
        {
            return new CudaDriverStatus(false, 0, $"no CUDA device: {loadedName} does not export cuInit and cuDeviceGetCount, so it is not a CUDA driver library");
        }

        NativeLibrary.TryGetExport(library, "cuGetErrorString", out IntPtr errorStringExport);
        var init = (delegate* unmanaged<uint, int>)initExport;
        var getCount = (delegate* unmanaged<int*, int>)countExport;

        int result = init(0);
        if (result == CudaErrorNoDevice)
        {
            return new CudaDriverStatus(false, 0, $"no CUDA device: the driver ({loadedName}) found no CUDA-capable device");
        }

        if (result != CudaSuccess)
        {
            return new CudaDriverStatus(false, 0, $"no CUDA device: CUDA driver initialisation failed: cuInit returned {result} ({ErrorText(errorStringExport, result)})");
        }

        int count = 0;
        result = getCount(&count);
        if (result != CudaSuccess)
        {
            return new CudaDriverStatus(false, 0, $"no CUDA device: cuDeviceGetCount returned {result} ({ErrorText(errorStringExport, result)})");
        }

        if (count < 1)
        {
            return new CudaDriverStatus(false, 0, $"no CUDA device: the driver ({loadedName}) reports 0 devices");
        }

        return new CudaDriverStatus(true, count, $"{count} CUDA device(s) found through {loadedName}");
    }

    private static string ErrorText(IntPtr errorStringExport, int error)
    {
        if (errorStringExport == IntPtr.Zero)
        {
            return "no error text";
        }

        byte* text = null;
        var getErrorString = (delegate* unmanaged<int, byte**, int>)errorStringExport;
        return getErrorString(error, &text) == CudaSuccess && text is not null
            ? Marshal.PtrToStringUTF8((IntPtr)text) ?? "no error text"
            : "unknown error code";
    }
}
