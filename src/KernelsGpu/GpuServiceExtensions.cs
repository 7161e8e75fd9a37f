using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using PowerRetention.Grains;

namespace PowerRetention.Kernels.Gpu;

/// <summary>Registers the compute backend a silo's compute device runs on.</summary>
public static class GpuServiceExtensions
{
    /// <summary>
    /// Chooses the backend from <paramref name="choice"/> (auto, cpu or cuda; see
    /// <see cref="BackendSelector.Create"/>) when the compute device is first created, and sets
    /// <see cref="ComputeDeviceOptions.Backend"/> to it. The choice is also registered as a
    /// <see cref="BackendChoice"/> singleton, which the container disposes with the silo.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="choice"/> is not auto, cpu or cuda (thrown here, not at startup).</exception>
    public static IServiceCollection AddComputeBackend(this IServiceCollection services, string choice)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(choice);
        if (!BackendSelector.Choices.Contains(choice.Trim().ToLowerInvariant()))
        {
            throw new ArgumentException($"Unknown compute backend '{choice}'; expected one of: {string.Join(", ", BackendSelector.Choices)}.", nameof(choice));
        }

        services.AddSingleton(provider => BackendSelector.Create(choice, provider.GetService<ILoggerFactory>()?.CreateLogger(typeof(BackendSelector).FullName!)));
        services.AddOptions<ComputeDeviceOptions>().Configure<BackendChoice>((options, chosen) => options.Backend = chosen.Backend);
        return services;
    }

    /// <summary>Runs this silo's kernels on the backend named by <paramref name="choice"/>: auto, cpu or cuda.</summary>
    /// <exception cref="ArgumentException"><paramref name="choice"/> is not auto, cpu or cuda.</exception>
    public static ISiloBuilder UseComputeBackend(this ISiloBuilder builder, string choice)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddComputeBackend(choice);
        return builder;
    }
}
