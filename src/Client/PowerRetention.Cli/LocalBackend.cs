using PowerRetention.Kernels;

namespace PowerRetention.Cli;

/// <summary>Runs retention on this process's cores through <see cref="Retention.Compute"/>.</summary>
internal sealed class LocalBackend : IRetentionBackend
{
    /// <inheritdoc />
    public string Description => "local";

    /// <inheritdoc />
    public Task<RetentionResult> ComputeAsync(RetentionJob job, IProgress<long>? progress, CancellationToken cancellationToken) =>
        Task.Run(
            () => Retention.Compute(job.Q, job.K, job.V, job.LogG, job.InitialState, job.Options, job.Output, progress, cancellationToken),
            cancellationToken);
}
