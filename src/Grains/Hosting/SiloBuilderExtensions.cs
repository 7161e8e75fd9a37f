using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace PowerRetention.Grains;

/// <summary>Registers PowerRetention's grains' services on a silo.</summary>
public static class SiloBuilderExtensions
{
    /// <summary>
    /// Adds the compute device, the worker placement and job options. Safe to call more than once.
    /// </summary>
    public static ISiloBuilder AddPowerRetention(this ISiloBuilder builder, Action<ComputeDeviceOptions>? configureDevice = null, Action<JobOptions>? configureJobs = null)
    {
        IServiceCollection services = builder.Services;
        if (configureDevice is not null)
        {
            services.Configure(configureDevice);
        }

        if (configureJobs is not null)
        {
            services.Configure(configureJobs);
        }

        if (services.Any(d => d.ServiceType == typeof(ComputeDevice)))
        {
            return builder;
        }

        services.AddOptions<ComputeDeviceOptions>();
        services.AddOptions<JobOptions>();
        services.TryAddSingleton<ComputeDevice>();
        services.AddPlacementDirector<SpreadPlacementStrategy, SpreadPlacementDirector>();
        return builder;
    }
}
