using PowerRetention.Client;

namespace PowerRetention.Cli.Tests.Support;

/// <summary>
/// One embedded silo shared by every in-process <c>powerret</c> run of the test process, so that each cluster
/// run does not start and stop its own. Stopped when the process exits.
/// </summary>
internal static class SharedCluster
{
    private static readonly Lazy<RetentionClient> s_client = new(Start, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>The running embedded cluster, started on first use.</summary>
    public static RetentionClient Client => s_client.Value;

    private static RetentionClient Start()
    {
        RetentionClient client = RetentionClient.StartEmbeddedAsync().GetAwaiter().GetResult();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => client.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(10));
        return client;
    }
}
