using ILGPU;
using ILGPU.Runtime.Cuda;

namespace PowerRetention.Kernels.Gpu;

/// <summary>What a silo reports about its GPU.</summary>
/// <param name="HasGpu">True when a CUDA device is usable.</param>
/// <param name="DeviceName">Name of the first CUDA device, or null without one.</param>
/// <param name="MemoryBytes">Memory of the first CUDA device in bytes, or 0 without one.</param>
/// <param name="Detail">What the driver reported, or what is missing.</param>
public sealed record GpuInfo(bool HasGpu, string? DeviceName, long MemoryBytes, string Detail)
{
    /// <summary>Returns the info of a backend already running on a device.</summary>
    public static GpuInfo FromBackend(GpuBackend backend)
    {
        ArgumentNullException.ThrowIfNull(backend);
        bool isCuda = backend.Name == "cuda";
        return new GpuInfo(isCuda, backend.DeviceName, backend.MemoryBytes, isCuda ? "running the cuda backend" : "running on ILGPU's CPU accelerator, not a GPU");
    }

    /// <summary>
    /// Looks for CUDA devices without creating a backend. Never throws for a missing driver or
    /// device: those are reported in <see cref="Detail"/>.
    /// </summary>
    public static GpuInfo Detect()
    {
        CudaDriverStatus driver = CudaDriverProbe.Probe();
        if (!driver.IsUsable)
        {
            return new GpuInfo(false, null, 0, driver.Detail);
        }

        using Context context = Context.Create(builder => builder.Cuda());
        Context.DeviceCollection<CudaDevice> devices = context.GetCudaDevices();
        if (devices.Count == 0)
        {
            return new GpuInfo(false, null, 0, $"{driver.Detail}, but ILGPU 1.5.3 supports none of them");
        }

        return new GpuInfo(true, devices[0].Name, devices[0].MemorySize, driver.Detail);
    }
}
