using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace PowerRetention.ServiceDefaults;

/// <summary>
/// Settings every PowerRetention process shares: OpenTelemetry logs, traces and metrics (exported over
/// OTLP when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set, as Aspire does) and health checks.
/// </summary>
public static class ServiceDefaultsExtensions
{
    /// <summary>Name of PowerRetention's own meter and activity source.</summary>
    public const string PowerRetentionTelemetryName = "PowerRetention";

    /// <summary>Path of the readiness endpoint: every health check must pass.</summary>
    public const string HealthPath = "/health";

    /// <summary>Path of the liveness endpoint: only checks tagged "live" run.</summary>
    public const string AlivePath = "/alive";

    /// <summary>Meters of Orleans 10: messaging, grain calls, membership, activations.</summary>
    public static IReadOnlyList<string> OrleansMeters { get; } = ["Microsoft.Orleans"];

    /// <summary>
    /// Activity sources of Orleans 10: runtime calls and application grain calls. Orleans starts these
    /// activities only on a silo or client that called <c>AddActivityPropagation()</c>.
    /// </summary>
    public static IReadOnlyList<string> OrleansActivitySources { get; } = ["Microsoft.Orleans.Runtime", "Microsoft.Orleans.Application"];

    private const string LiveTag = "live";

    /// <summary>
    /// Adds OpenTelemetry and the default health checks to a host application builder
    /// (<c>WebApplication.CreateBuilder</c>, <c>Host.CreateApplicationBuilder</c>). Safe to call more than once.
    /// </summary>
    public static TBuilder AddServiceDefaults<TBuilder>(this TBuilder builder)
        where TBuilder : IHostApplicationBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        AddServiceDefaults(builder.Services, builder.Configuration);
        return builder;
    }

    /// <summary>
    /// Adds OpenTelemetry and the default health checks to a generic host builder
    /// (<c>Host.CreateDefaultBuilder</c>). Safe to call more than once.
    /// </summary>
    /// <remarks>
    /// Call it after any <c>ConfigureLogging</c> that clears the logging providers; clearing them
    /// afterwards removes the OpenTelemetry log exporter too.
    /// </remarks>
    public static IHostBuilder AddServiceDefaults(this IHostBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.ConfigureServices((context, services) => AddServiceDefaults(services, context.Configuration));
    }

    /// <summary>
    /// Maps <see cref="HealthPath"/> (all health checks) and <see cref="AlivePath"/> (liveness checks only).
    /// </summary>
    public static WebApplication MapDefaultEndpoints(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.MapHealthChecks(HealthPath);
        app.MapHealthChecks(AlivePath, new HealthCheckOptions { Predicate = check => check.Tags.Contains(LiveTag) });
        return app;
    }

    private static void AddServiceDefaults(IServiceCollection services, IConfiguration configuration)
    {
        if (services.Any(descriptor => descriptor.ServiceType == typeof(ServiceDefaultsMarker)))
        {
            return;
        }

        services.AddSingleton<ServiceDefaultsMarker>();
        services.AddHealthChecks().AddCheck("self", () => HealthCheckResult.Healthy(), [LiveTag]);

        OpenTelemetryBuilder telemetry = services.AddOpenTelemetry()
            .WithLogging(configureBuilder: null, configureOptions: logging =>
            {
                logging.IncludeFormattedMessage = true;
                logging.IncludeScopes = true;
            })
            .WithMetrics(metrics => metrics
                .AddMeter(PowerRetentionTelemetryName)
                .AddMeter([.. OrleansMeters])
                .AddAspNetCoreInstrumentation()
                .AddHttpClientInstrumentation()
                .AddRuntimeInstrumentation())
            .WithTracing(tracing => tracing
                .AddSource(PowerRetentionTelemetryName)
                .AddSource([.. OrleansActivitySources])
                .AddAspNetCoreInstrumentation(aspNetCore => aspNetCore.Filter = context => !IsHealthRequest(context))
                .AddHttpClientInstrumentation());

        // The exporter reads the endpoint, protocol and headers from the OTEL_EXPORTER_OTLP_* settings.
        if (!string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]))
        {
            telemetry.UseOtlpExporter();
        }
    }

    private static bool IsHealthRequest(HttpContext context) =>
        context.Request.Path.StartsWithSegments(HealthPath) || context.Request.Path.StartsWithSegments(AlivePath);

    // Registered once so that a second call is a no-op instead of a second set of exporters.
    private sealed class ServiceDefaultsMarker;
}
