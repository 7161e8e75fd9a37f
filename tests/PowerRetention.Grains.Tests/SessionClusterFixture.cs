using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;
using Orleans.Runtime.Hosting;
using Orleans.TestingHost;
using PowerRetention.Client;

namespace PowerRetention.Grains.Tests;

/// <summary>
/// A three-silo cluster whose decode sessions persist to <see cref="SharedTestStorage"/>, which
/// outlives any silo, so tests may kill the silo that hosts a session. Failure detection is fast.
/// </summary>
public sealed class SessionClusterFixture : IAsyncLifetime
{
    public TestCluster Cluster { get; private set; } = null!;

    public RetentionClient Client { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var builder = new TestClusterBuilder(3);
        builder.AddSiloBuilderConfigurator<SiloConfigurator>();
        Cluster = builder.Build();
        await Cluster.DeployAsync();
        Client = RetentionClient.FromOrleansClient(Cluster.Client, "session test cluster");
    }

    public async Task DisposeAsync() => await Cluster.DisposeAsync();

    private sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder siloBuilder)
        {
            siloBuilder.AddPowerRetention(device => device.Threads = 1);
            siloBuilder.Services.AddGrainStorage(DecodeSessionStorage.StorageName, (_, _) => new SharedTestStorage());
            siloBuilder.Configure<ClusterMembershipOptions>(options =>
            {
                options.ProbeTimeout = TimeSpan.FromSeconds(1);
                options.NumMissedProbesLimit = 2;
                options.NumVotesForDeathDeclaration = 1;
                options.TableRefreshTimeout = TimeSpan.FromSeconds(1);
            });
            siloBuilder.Configure<SiloMessagingOptions>(options => options.ResponseTimeout = TimeSpan.FromSeconds(10));
        }
    }
}

/// <summary>A one-silo cluster whose decode sessions persist to the memory storage <see cref="DecodeSessionStorage.AddDecodeSessionStorage"/> registers.</summary>
public sealed class MemorySessionClusterFixture : IAsyncLifetime
{
    public TestCluster Cluster { get; private set; } = null!;

    public RetentionClient Client { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var builder = new TestClusterBuilder(1);
        builder.AddSiloBuilderConfigurator<SiloConfigurator>();
        Cluster = builder.Build();
        await Cluster.DeployAsync();
        Client = RetentionClient.FromOrleansClient(Cluster.Client, "memory session test cluster");
    }

    public async Task DisposeAsync() => await Cluster.DisposeAsync();

    private sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder siloBuilder)
        {
            siloBuilder.AddPowerRetention(device => device.Threads = 1);
            siloBuilder.AddDecodeSessionStorage(redisConnectionString: null);

            // A second call must change nothing.
            siloBuilder.AddDecodeSessionStorage(redisConnectionString: null);
        }
    }
}
