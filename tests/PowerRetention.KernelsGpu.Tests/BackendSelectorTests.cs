using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using PowerRetention.Grains;
using PowerRetention.Kernels;
using PowerRetention.Kernels.Gpu;

namespace PowerRetention.KernelsGpu.Tests;

/// <summary>
/// Backend selection. Where the result depends on the machine, each test checks the result expected
/// on a machine with a usable CUDA device or on one without, whichever this is.
/// </summary>
public sealed class BackendSelectorTests
{
    private static readonly bool s_hasCuda = CudaDriverProbe.Probe().IsUsable;

    [Fact]
    public void Auto_ChoosesCudaOrCpuWithReason()
    {
        using BackendChoice choice = BackendSelector.Create("auto");

        if (s_hasCuda)
        {
            Assert.Equal("cuda", choice.Backend.Name);
        }
        else
        {
            Assert.Same(CpuBackend.Instance, choice.Backend);
            Assert.Contains("no CUDA device", choice.Reason, StringComparison.Ordinal);
            Assert.EndsWith("Falling back to the cpu backend.", choice.Reason, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Cuda_WithoutDeviceThrowsClearly()
    {
        if (s_hasCuda)
        {
            using BackendChoice choice = BackendSelector.Create("cuda");
            Assert.Equal("cuda", choice.Backend.Name);
            return;
        }

        var error = Assert.Throws<InvalidOperationException>(() => BackendSelector.Create("cuda"));

        Assert.StartsWith("The CUDA backend is unavailable: no CUDA device", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Cpu_ChoosesCpuBackend()
    {
        using BackendChoice choice = BackendSelector.Create(" CPU ");

        Assert.Same(CpuBackend.Instance, choice.Backend);
    }

    [Fact]
    public void UnknownChoice_ThrowsWithChoices()
    {
        var error = Assert.Throws<ArgumentException>(() => BackendSelector.Create("rocm"));

        Assert.Contains("auto, cpu, cuda", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Probe_MissingLibraryNamesIt()
    {
        CudaDriverStatus status = CudaDriverProbe.ProbeDriver(["libpowerret-missing-cuda.so"]);

        Assert.False(status.IsUsable);
        Assert.Equal("no CUDA device: no CUDA driver library (libpowerret-missing-cuda.so) was found; install the NVIDIA driver or choose the cpu backend", status.Detail);
    }

    [Fact]
    public void Probe_NonCudaLibraryIsRejected()
    {
        CudaDriverStatus status = CudaDriverProbe.ProbeDriver(["libc.so.6"]);

        Assert.False(status.IsUsable);
        Assert.Contains("does not export cuInit", status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void GpuInfo_ReportsDeviceOrReason()
    {
        GpuInfo info = GpuInfo.Detect();

        Assert.Equal(s_hasCuda, info.HasGpu);
        if (!s_hasCuda)
        {
            Assert.Null(info.DeviceName);
            Assert.Equal(0, info.MemoryBytes);
            Assert.StartsWith("no CUDA device", info.Detail, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void AddComputeBackend_SetsDeviceOptions()
    {
        var services = new ServiceCollection();
        services.AddComputeBackend("cpu");
        using ServiceProvider provider = services.BuildServiceProvider();

        ComputeDeviceOptions options = provider.GetRequiredService<IOptions<ComputeDeviceOptions>>().Value;

        Assert.Same(CpuBackend.Instance, options.Backend);
        Assert.Same(CpuBackend.Instance, provider.GetRequiredService<BackendChoice>().Backend);
    }

    [Fact]
    public void AddComputeBackend_CudaFailsWithoutDevice()
    {
        if (s_hasCuda)
        {
            return;
        }

        var services = new ServiceCollection();
        services.AddComputeBackend("cuda");
        using ServiceProvider provider = services.BuildServiceProvider();

        Assert.Throws<InvalidOperationException>(() => provider.GetRequiredService<IOptions<ComputeDeviceOptions>>().Value);
    }

    [Fact]
    public void AddComputeBackend_UnknownChoiceThrowsAtOnce()
    {
        var services = new ServiceCollection();

        Assert.Throws<ArgumentException>(() => services.AddComputeBackend("gpu"));
    }
}
