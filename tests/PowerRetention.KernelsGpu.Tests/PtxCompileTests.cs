using System.Reflection;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using PowerRetention.Kernels.Gpu;

namespace PowerRetention.KernelsGpu.Tests;

/// <summary>
/// Compiles every device kernel to PTX without a GPU, which catches what ILGPU's CPU accelerator
/// never checks: functions with no PTX implementation and shared memory that is not a constant size.
/// </summary>
public sealed class PtxCompileTests
{
    public static TheoryData<string> Kernels() => new(
        nameof(RetentionKernels.GemmSimple),
        nameof(RetentionKernels.GemmTiled),
        nameof(RetentionKernels.Embed),
        nameof(RetentionKernels.Weights));

    [Theory]
    [MemberData(nameof(Kernels))]
    public void Kernel_CompilesForHopper(string name)
    {
        // sm_90 (H100, H200) with PTX ISA 8.0, which CUDA 12.0 and newer drivers accept. ILGPU 1.5.3
        // writes ".target sm_80" for this pair; the driver compiles that PTX for sm_90 when it loads it.
        using Context context = Context.Create(builder => builder.Cuda().EnableAlgorithms());
        MethodInfo method = typeof(RetentionKernels).GetMethod(name, BindingFlags.Public | BindingFlags.Static)!;
        using var backend = new PTXBackend(context, new CudaCapabilityContext(CudaArchitecture.SM_90), CudaArchitecture.SM_90, CudaInstructionSet.ISA_80, null);
        EntryPointDescription entry = EntryPointDescription.FromExplicitlyGroupedKernel(method);

        var compiled = (PTXCompiledKernel)backend.Compile(entry, default(KernelSpecialization));

        Assert.Contains(".target sm_", compiled.PTXAssembly, StringComparison.Ordinal);
        Assert.Contains($".entry Kernel_{name}(", compiled.PTXAssembly, StringComparison.Ordinal);
    }
}
