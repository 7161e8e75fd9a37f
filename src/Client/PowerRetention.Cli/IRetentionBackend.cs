using PowerRetention.Kernels;

namespace PowerRetention.Cli;

/// <summary>One retention computation: inputs, options and the tensor the output is written into.</summary>
/// <param name="Q">Queries, (b, t, hq, d).</param>
/// <param name="K">Keys, (b, t, h, d).</param>
/// <param name="V">Values, (b, t, h, e).</param>
/// <param name="LogG">Log-gates, (b, t, h) float32, or null without gating.</param>
/// <param name="InitialState">State that acts as everything before the sequence, or null.</param>
/// <param name="Options">Degree, scale, chunk size, threads and whether to return the final state.</param>
/// <param name="Output">The (b, t, hq, e) tensor to write Y into, often a file-backed one.</param>
internal sealed record RetentionJob(
    Tensor Q,
    Tensor K,
    Tensor V,
    Tensor? LogG,
    RetentionState? InitialState,
    RetentionOptions Options,
    Tensor Output);

/// <summary>
/// Where the commands run a retention computation. <see cref="LocalBackend"/> uses this process's cores;
/// a cluster backend can run the same job on Orleans silos.
/// </summary>
internal interface IRetentionBackend
{
    /// <summary>A short description for the command's summary, such as "local, 2 threads".</summary>
    string Description { get; }

    /// <summary>Runs the job, writing Y into <see cref="RetentionJob.Output"/>.</summary>
    /// <param name="job">The computation.</param>
    /// <param name="progress">Receives the number of token-heads done so far, from any thread.</param>
    /// <param name="cancellationToken">Stops the computation.</param>
    /// <returns>The result of <see cref="Retention.Compute"/>, with the final state when requested.</returns>
    Task<RetentionResult> ComputeAsync(RetentionJob job, IProgress<long>? progress, CancellationToken cancellationToken);
}
