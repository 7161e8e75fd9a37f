using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace PowerRetention.AppHost;

/// <summary>
/// Healthy once 127.0.0.1:port accepts a TCP connection. A silo opens its gateway port only when it
/// has joined the cluster, so WaitFor on a silo with this check waits until clients can connect.
/// </summary>
internal sealed class TcpHealthCheck(int port) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        using var client = new TcpClient();
        try
        {
            await client.ConnectAsync(IPAddress.Loopback, port, cancellationToken);
            return HealthCheckResult.Healthy($"127.0.0.1:{port} accepts connections.");
        }
        catch (SocketException error)
        {
            return HealthCheckResult.Unhealthy($"127.0.0.1:{port} does not accept connections: {error.Message}");
        }
    }
}

/// <summary>Adds <see cref="TcpHealthCheck"/> to resources.</summary>
internal static class TcpHealthCheckExtensions
{
    /// <summary>Registers a TCP check of 127.0.0.1:<paramref name="port"/> and makes it the resource's health check.</summary>
    public static IResourceBuilder<T> WithTcpHealthCheck<T>(this IResourceBuilder<T> resource, int port)
        where T : IResource
    {
        string key = $"{resource.Resource.Name}-tcp-{port}";
        resource.ApplicationBuilder.Services.AddHealthChecks().Add(new HealthCheckRegistration(key, _ => new TcpHealthCheck(port), failureStatus: null, tags: null));
        return resource.WithHealthCheck(key);
    }
}
