using PowerRetention.Kernels;
using PowerRetention.Kernels.Gpu;
using PowerRetention.KernelsGpu.Tests.Support;

namespace PowerRetention.KernelsGpu.Tests;

/// <summary>
/// The reference cases whose shapes ILGPU's CPU accelerator finishes in a few seconds. The other three
/// (gated_gqa_padded_deg2, long_gated_deg2, large_scores_deg4) also pass but took 24 to 42 s each on a
/// 2-core machine; tools/GpuCheck runs every case on CUDA.
/// </summary>
public sealed class VectorCaseTests : IDisposable
{
    private readonly GpuBackend _backend = GpuBackend.CreateCpuAccelerator();

    public static TheoryData<string> Cases() => new("basic_deg2", "head_dim_24", "single_token", "zero_rows", "deg6_tiny_head", "gated_deg4", "strong_decay");

    [Theory]
    [MemberData(nameof(Cases))]
    public void Case_MatchesReference(string name)
    {
        using VectorCase vector = VectorCase.Load(name);

        RetentionResult result = Retention.Compute(vector.Q, vector.K, vector.V, vector.LogG, options: vector.Options with { Backend = _backend });

        Measure.Within(result.Output.ToSingleArray(), vector.Y.ToSingleArray(), 1e-4, $"{name} on {_backend.Name}");
    }

    public void Dispose() => _backend.Dispose();
}
