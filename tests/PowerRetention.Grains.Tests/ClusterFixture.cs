using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;
using Orleans.TestingHost;
using PowerRetention.Client;

namespace PowerRetention.Grains.Tests;

/// <summary>A TestingHost cluster of several in-process silos with fast failure detection.</summary>
public abstract class ClusterFixture : IAsyncLifetime
{
    private readonly short _silos;

    protected ClusterFixture(short silos)
    {
        _silos = silos;
    }

    public TestCluster Cluster { get; private set; } = null!;

    public RetentionClient Client { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var builder = new TestClusterBuilder(_silos);
        builder.AddSiloBuilderConfigurator<SiloConfigurator>();
        Cluster = builder.Build();
        await Cluster.DeployAsync();
        Client = RetentionClient.FromOrleansClient(Cluster.Client, "test cluster");
    }

    public async Task DisposeAsync()
    {
        WorkGate.Open();
        await Cluster.DisposeAsync();
    }

    private sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder siloBuilder)
        {
            siloBuilder.AddPowerRetention(device => device.Threads = 2, jobs => jobs.MonitorInterval = TimeSpan.FromMilliseconds(200));
            siloBuilder.Services.AddSingleton<IComputeGate, WorkGate.SiloGate>();
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

public sealed class OneSiloFixture() : ClusterFixture(1);

public sealed class ThreeSiloFixture() : ClusterFixture(3);

/// <summary>A separate three-silo cluster whose silos the fault tests may kill.</summary>
public sealed class FaultClusterFixture() : ClusterFixture(3);

[CollectionDefinition(Name)]
public sealed class ClusterCollection : ICollectionFixture<OneSiloFixture>, ICollectionFixture<ThreeSiloFixture>, ICollectionFixture<FaultClusterFixture>
{
    public const string Name = "clusters";
}

/// <summary>
/// Holds compute-device work while armed: on every silo until <see cref="HoldOnly"/> names the one
/// silo to keep holding. Shared by the in-process silos of a test cluster.
/// </summary>
public static class WorkGate
{
    private static readonly object s_lock = new();
    private static bool s_armed;
    private static string? s_held;

    public static void Arm()
    {
        lock (s_lock)
        {
            s_armed = true;
            s_held = null;
        }
    }

    public static void HoldOnly(string silo)
    {
        lock (s_lock)
        {
            s_held = silo;
            Monitor.PulseAll(s_lock);
        }
    }

    public static void Open()
    {
        lock (s_lock)
        {
            s_armed = false;
            s_held = null;
            Monitor.PulseAll(s_lock);
        }
    }

    public sealed class SiloGate(ILocalSiloDetails silo) : IComputeGate
    {
        public void Enter(CancellationToken cancellationToken)
        {
            string self = silo.SiloAddress.ToString();
            lock (s_lock)
            {
                while (s_armed && (s_held is null || s_held == self))
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    Monitor.Wait(s_lock, TimeSpan.FromMilliseconds(200));
                }
            }
        }
    }
}
