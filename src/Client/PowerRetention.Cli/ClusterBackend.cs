using PowerRetention.Client;
using PowerRetention.Kernels;
using GrainInputFiles = PowerRetention.Grains.InputFiles;

namespace PowerRetention.Cli;

/// <summary>
/// Runs file jobs on an Orleans cluster through <see cref="RetentionClient"/>: a one-silo cluster embedded in
/// this process, or a running cluster reached through its gateways. Disposing stops an embedded silo that
/// this backend started.
/// </summary>
internal sealed class ClusterBackend : IAsyncDisposable
{
    private readonly RetentionClient _client;
    private readonly bool _ownsClient;

    private ClusterBackend(RetentionClient client, bool ownsClient, string description)
    {
        _client = client;
        _ownsClient = ownsClient;
        Description = description;
    }

    /// <summary>Where jobs run, for the command's summary, such as "embedded cluster, 2 threads".</summary>
    public string Description { get; }

    /// <summary>
    /// Starts a one-silo cluster in this process, or reuses <see cref="CliSettings.EmbeddedCluster"/> when the
    /// settings supply one and <paramref name="threads"/> is null.
    /// </summary>
    /// <param name="threads">Compute threads of the embedded silo; null means one per core.</param>
    public static async Task<ClusterBackend> StartEmbeddedAsync(int? threads, CliSettings settings, CancellationToken cancellationToken)
    {
        if (threads is null && settings.EmbeddedCluster is RetentionClient shared)
        {
            return new ClusterBackend(shared, ownsClient: false, "embedded cluster");
        }

        // RetentionClient.StartEmbeddedAsync would leave a half-started host behind if cancelled while starting.
        cancellationToken.ThrowIfCancellationRequested();
        RetentionClient client = await RetentionClient.StartEmbeddedAsync(threads ?? 0, configureLogging: null, cancellationToken).ConfigureAwait(false);
        int threadCount = threads ?? Environment.ProcessorCount;
        return new ClusterBackend(client, ownsClient: true, Units.Invariant($"embedded cluster, {threadCount} thread{(threadCount == 1 ? string.Empty : "s")}"));
    }

    /// <summary>Connects to a running cluster through its gateways.</summary>
    /// <param name="gateways">Gateway addresses, host:port each.</param>
    /// <param name="timeout">Time to wait for a gateway to accept the connection.</param>
    /// <exception cref="UsageException">No gateway accepted the connection or an address is malformed; the message names the addresses.</exception>
    public static async Task<ClusterBackend> ConnectAsync(IReadOnlyList<string> gateways, TimeSpan timeout, string clusterId, string serviceId, CancellationToken cancellationToken)
    {
        try
        {
            RetentionClient client = await RetentionClient.ConnectAsync(gateways, timeout, clusterId, serviceId, cancellationToken).ConfigureAwait(false);
            return new ClusterBackend(client, ownsClient: true, client.Description);
        }
        catch (RetentionJobException error)
        {
            throw new UsageException($"{error.Message} Check that the silos are running and that --cluster names their gateway ports.");
        }
        catch (ArgumentException error)
        {
            throw new UsageException($"invalid value '{string.Join(",", gateways)}' for --cluster: {error.Message}");
        }
    }

    /// <summary>Runs a job on files every silo can read; the output file appears only when the job succeeds.</summary>
    /// <param name="inputs">The input files.</param>
    /// <param name="outputPath">Output file, .npy or .safetensors.</param>
    /// <param name="initialState">State acting as everything before the sequence, or null.</param>
    /// <param name="options">Degree, scale, chunk and segment sizes, and whether to return the final state.</param>
    /// <param name="progress">Receives token-heads done.</param>
    /// <param name="cancellationToken">Cancels the job in the cluster too.</param>
    public Task<JobResult> ProcessFilesAsync(GrainInputFiles inputs, string outputPath, RetentionState? initialState, ProcessingOptions options, IProgress<long> progress, CancellationToken cancellationToken) =>
        _client.ProcessFilesAsync(inputs, outputPath, initialState, options, new TokenHeadProgress(progress), cancellationToken);

    /// <summary>Stops the embedded silo or disconnects, unless the client came from the settings.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_ownsClient)
        {
            await _client.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Forwards job progress to a token-head display on the reporting thread, so no report arrives after the job ends.</summary>
    private sealed class TokenHeadProgress(IProgress<long> display) : IProgress<JobProgress>
    {
        public void Report(JobProgress value) => display.Report(value.TokenHeadsDone);
    }
}
