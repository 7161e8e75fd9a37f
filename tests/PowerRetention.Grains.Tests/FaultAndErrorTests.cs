using PowerRetention.Client;
using PowerRetention.Kernels;
using PowerRetention.Kernels.IO;

namespace PowerRetention.Grains.Tests;

[Collection(ClusterCollection.Name)]
public sealed class FaultAndErrorTests(ThreeSiloFixture cluster, FaultClusterFixture faultCluster) : IDisposable
{
    private const int Time = 6 * 64;
    private static readonly TimeSpan s_jobTimeout = TimeSpan.FromSeconds(90);

    public void Dispose() => WorkGate.Open();

    [Fact]
    public async Task SiloDeath_SegmentsRecomputedElsewhere()
    {
        RetentionInputs inputs = TestData.Inputs(Time, seed: 31);
        float[] expected = Retention.Compute(inputs.Q, inputs.K, inputs.V, inputs.LogG, options: new RetentionOptions { ChunkSize = 32 }).Output.ToSingleArray();
        (string folder, InputFiles files) = TestData.WriteNpy(inputs);
        string output = Path.Combine(folder, "y.npy");
        IJobGrain job = faultCluster.Cluster.Client.GetGrain<IJobGrain>(Guid.NewGuid());

        // Hold all compute, start the job, then let every silo but the victim work.
        await EnsureThreeSilosAsync();
        WorkGate.Arm();
        await job.StartAsync(FileSpec(files, output, segments: 6));
        JobStatus started = await job.GetStatusAsync();
        Orleans.TestingHost.SiloHandle victim = await PickVictimAsync(started, segments: 6);
        WorkGate.HoldOnly(victim.SiloAddress.ToString());
        await faultCluster.Cluster.KillSiloAsync(victim);

        JobStatus finished = await WaitFinishedAsync(job);

        Assert.True(finished.State == JobState.Completed, $"job ended {finished.State}: {finished.Error}");
        Assert.True(finished.SegmentRestarts >= 1, $"expected segments of {victim.SiloAddress} to restart; restarts = {finished.SegmentRestarts}");
        TestData.Within(TestData.RelativeError(TestData.ReadOutput(output), expected), 1e-5, "output after a silo died");
        Assert.Equal(["k.npy", "log_g.npy", "q.npy", "v.npy", "y.npy"], TestData.FilesIn(folder));
    }

    [Fact]
    public async Task SiloDeath_StreamedInputsUploadedAgain()
    {
        RetentionInputs inputs = TestData.Inputs(Time, seed: 39, batch: 2);
        RetentionResult expected = Retention.Compute(inputs.Q, inputs.K, inputs.V, inputs.LogG, options: new RetentionOptions { ChunkSize = 32, ReturnFinalState = true });
        var jobId = Guid.NewGuid();
        IJobGrain job = faultCluster.Cluster.Client.GetGrain<IJobGrain>(jobId);
        RetentionClient client = RetentionClient.FromOrleansClient(faultCluster.Cluster.Client);

        // Hold all compute while the inputs are uploaded, then kill a silo that holds some of them.
        await EnsureThreeSilosAsync();
        WorkGate.Arm();
        Task<JobResult> running = client.ProcessAsync(inputs.Q, inputs.K, inputs.V, inputs.LogG, options: DistributedJobTests.Options(6) with { JobId = jobId });
        JobStatus started = await WaitForAsync(job, status => status.State == JobState.Running);
        Orleans.TestingHost.SiloHandle victim = await PickVictimAsync(started, segments: 6);
        WorkGate.HoldOnly(victim.SiloAddress.ToString());
        await faultCluster.Cluster.KillSiloAsync(victim);

        JobResult result = await running.WaitAsync(s_jobTimeout);

        Assert.True(result.SegmentRestarts >= 1, $"expected segments of {victim.SiloAddress} to restart; restarts = {result.SegmentRestarts}");
        TestData.Within(TestData.RelativeError(result.Output!.ToSingleArray(), expected.Output.ToSingleArray()), 1e-5, "output after a silo died");
        TestData.Within(TestData.RelativeError(result.FinalState!.HeadStates[3].Values, expected.FinalState!.HeadStates[3].Values), 1e-5, "final state after a silo died");
    }

    [Fact]
    public async Task Cancel_ReleasesWorkersAndLeavesNoFile()
    {
        RetentionInputs inputs = TestData.Inputs(Time, seed: 32);
        (string folder, InputFiles files) = TestData.WriteNpy(inputs);
        string output = Path.Combine(folder, "y.safetensors");
        IJobGrain job = cluster.Cluster.Client.GetGrain<IJobGrain>(Guid.NewGuid());
        WorkGate.Arm();
        JobPlan plan = await job.StartAsync(FileSpec(files, output, segments: 3));
        Assert.Contains(TestData.FilesIn(folder), name => name.EndsWith(".partial", StringComparison.Ordinal));

        await job.CancelAsync();
        WorkGate.Open();

        JobStatus status = await job.GetStatusAsync();
        Assert.Equal(JobState.Cancelled, status.State);
        for (int segment = 0; segment < plan.SegmentCount; segment++)
        {
            WorkerStatus worker = await cluster.Cluster.Client.GetGrain<ISegmentWorkerGrain>($"{plan.JobId:N}/{segment}").GetStatusAsync();
            Assert.True(worker.Phase == WorkerPhase.Idle, $"worker of segment {segment} is {worker.Phase} after cancel");
        }

        Assert.Equal(["k.npy", "log_g.npy", "q.npy", "v.npy"], TestData.FilesIn(folder));
    }

    [Fact]
    public async Task Segments_StartWithinWindow()
    {
        RetentionInputs inputs = TestData.Inputs(4 * Time, seed: 36);
        float[] expected = Retention.Compute(inputs.Q, inputs.K, inputs.V, inputs.LogG, options: new RetentionOptions { ChunkSize = 32 }).Output.ToSingleArray();
        (string folder, InputFiles files) = TestData.WriteNpy(inputs);
        string output = Path.Combine(folder, "y.npy");
        IJobGrain job = cluster.Cluster.Client.GetGrain<IJobGrain>(Guid.NewGuid());

        // 24 segments of 64 tokens with compute held: only the first ActiveSegmentsPerSilo x silos may start.
        WorkGate.Arm();
        JobPlan plan = await job.StartAsync(FileSpec(files, output, segments: 1) with { SegmentTokens = 64 });
        int window = new JobOptions().ActiveSegmentsPerSilo * plan.SiloCount;
        Assert.True(plan.SegmentCount > window, $"{plan.SegmentCount} segments do not exceed the window of {window}");
        WorkerPhase[] phases = await Task.WhenAll(Enumerable.Range(0, plan.SegmentCount).Select(async segment =>
            (await cluster.Cluster.Client.GetGrain<ISegmentWorkerGrain>($"{plan.JobId:N}/{segment}").GetStatusAsync()).Phase));
        Assert.Equal(Enumerable.Repeat(WorkerPhase.Busy, window), phases[..window]);
        Assert.Equal(Enumerable.Repeat(WorkerPhase.Waiting, plan.SegmentCount - window), phases[window..]);

        WorkGate.Open();
        JobStatus status = await WaitFinishedAsync(job);

        Assert.Equal(JobState.Completed, status.State);
        TestData.Within(TestData.RelativeError(TestData.ReadOutput(output), expected), 1e-5, "output of a job longer than its window");
        Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public async Task ClientCancellation_CancelsJob()
    {
        RetentionInputs inputs = TestData.Inputs(Time, seed: 33);
        (string folder, InputFiles files) = TestData.WriteNpy(inputs);
        string output = Path.Combine(folder, "y.npy");
        using var cancellation = new CancellationTokenSource();
        WorkGate.Arm();
        var progress = new CallbackProgress(_ => cancellation.Cancel());

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            cluster.Client.ProcessFilesAsync(files, output, options: DistributedJobTests.Options(3), progress: progress, cancellationToken: cancellation.Token));

        WorkGate.Open();
        Assert.Equal(["k.npy", "log_g.npy", "q.npy", "v.npy"], TestData.FilesIn(folder));
    }

    [Fact]
    public async Task MissingFile_RejectedBeforeStart()
    {
        (string folder, InputFiles files) = TestData.WriteNpy(TestData.Inputs(64, seed: 34));
        InputFiles missing = files with { K = Path.Combine(folder, "absent.npy") };

        var error = await Assert.ThrowsAsync<ArgumentException>(() => cluster.Client.ProcessFilesAsync(missing, Path.Combine(folder, "y.npy")));

        Assert.Contains("absent.npy", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(TestData.FilesIn(folder), name => name.StartsWith(".y", StringComparison.Ordinal) || name == "y.npy");
    }

    [Fact]
    public async Task MismatchedShapes_NameTensor()
    {
        (string folder, InputFiles files) = TestData.WriteNpy(TestData.Inputs(64, seed: 35));
        NpyFile.Write(Path.Combine(folder, "k.npy"), Tensor.Zeros(DataType.Float32, 1, 63, 2, 8));

        var error = await Assert.ThrowsAsync<ArgumentException>(() => cluster.Client.ProcessFilesAsync(files, Path.Combine(folder, "y.npy")));

        Assert.Contains("K has shape (1, 63, 2, 8)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NaNInFile_FailsWithIndexAndNoOutput()
    {
        RetentionInputs inputs = TestData.Inputs(Time, seed: 36);
        float[] q = inputs.Q.ToSingleArray();
        q[((300 * 4) + 1) * 8 + 2] = float.NaN;
        (string folder, InputFiles files) = TestData.WriteNpy(inputs with { Q = Tensor.FromArray(q, 1, Time, 4, 8) });
        string output = Path.Combine(folder, "y.npy");

        var error = await Assert.ThrowsAsync<RetentionJobException>(() => cluster.Client.ProcessFilesAsync(files, output, options: DistributedJobTests.Options(4)));

        Assert.Contains("Q[0, 300, 1, 2] = NaN", error.Message, StringComparison.Ordinal);
        Assert.Equal(["k.npy", "log_g.npy", "q.npy", "v.npy"], TestData.FilesIn(folder));
    }

    [Fact]
    public async Task PositiveGateStreamed_RejectedBeforeStart()
    {
        RetentionInputs inputs = TestData.Inputs(64, seed: 37);
        float[] gates = inputs.LogG!.ToSingleArray();
        gates[41] = 0.5f;

        var error = await Assert.ThrowsAsync<ArgumentException>(() =>
            cluster.Client.ProcessAsync(inputs.Q, inputs.K, inputs.V, Tensor.FromArray(gates, 1, 64, 2)));

        Assert.Contains("log_G[0, 20, 1] = 0.5", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task BFloat16ToNpy_Rejected()
    {
        RetentionInputs inputs = TestData.Inputs(64, seed: 38, dataType: DataType.BFloat16);
        string folder = Directory.CreateTempSubdirectory("powerret-grains-").FullName;
        string input = Path.Combine(folder, "x.safetensors");
        SafetensorsFile.Write(input, new Dictionary<string, Tensor> { ["q"] = inputs.Q, ["k"] = inputs.K, ["v"] = inputs.V, ["log_g"] = inputs.LogG! });

        var error = await Assert.ThrowsAsync<ArgumentException>(() =>
            cluster.Client.ProcessFilesAsync(new InputFiles(null, null, null, null, input), Path.Combine(folder, "y.npy")));

        Assert.Contains("bfloat16", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnreachableCluster_NamesAddress()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        int port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();

        var error = await Assert.ThrowsAsync<RetentionJobException>(() => RetentionClient.ConnectAsync([$"127.0.0.1:{port}"], TimeSpan.FromSeconds(5)));

        Assert.Contains($"127.0.0.1:{port}", error.Message, StringComparison.Ordinal);
    }

    // Each silo-death test kills one silo of the fault cluster; start replacements so every test has three.
    private async Task EnsureThreeSilosAsync()
    {
        while (faultCluster.Cluster.Silos.Count(s => s.IsActive) < 3)
        {
            await faultCluster.Cluster.StartAdditionalSiloAsync();
        }
    }

    // A silo that hosts some of the job's workers, other than the primary (which the other silos'
    // membership needs) and the coordinator's.
    private async Task<Orleans.TestingHost.SiloHandle> PickVictimAsync(JobStatus started, int segments)
    {
        var hosts = new HashSet<string>();
        for (int segment = 0; segment < segments; segment++)
        {
            WorkerStatus worker = await faultCluster.Cluster.Client.GetGrain<ISegmentWorkerGrain>($"{started.JobId:N}/{segment}").GetStatusAsync();
            hosts.Add(worker.Silo ?? string.Empty);
        }

        Orleans.TestingHost.SiloHandle[] candidates = faultCluster.Cluster.Silos
            .Where(s => s.IsActive && s != faultCluster.Cluster.Primary && s.SiloAddress.ToString() != started.CoordinatorSilo && hosts.Contains(s.SiloAddress.ToString()))
            .ToArray();
        Assert.True(candidates.Length > 0, $"no silo to kill: coordinator on {started.CoordinatorSilo}, workers on {string.Join(", ", hosts)}, primary {faultCluster.Cluster.Primary?.SiloAddress}");
        return candidates[0];
    }

    private static JobSpec FileSpec(InputFiles files, string output, int segments) => new()
    {
        Shape = new JobShape(1, 0, 1, 1, 1, 1, DataType.Float32, false),
        Input = InputKind.Files,
        Files = files,
        OutputPath = output,
        ChunkSize = 32,
        SegmentTokens = (Time + segments - 1) / segments,
    };

    private static Task<JobStatus> WaitFinishedAsync(IJobGrain job) => WaitForAsync(job, status => status.IsFinished);

    private static async Task<JobStatus> WaitForAsync(IJobGrain job, Func<JobStatus, bool> condition)
    {
        using var timeout = new CancellationTokenSource(s_jobTimeout);
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(100));
        JobStatus status = await job.GetStatusAsync();
        while (!condition(status))
        {
            if (!await timer.WaitForNextTickAsync(timeout.Token).AsTask().ContinueWith(t => t.IsCompletedSuccessfully && t.Result, TaskScheduler.Default))
            {
                Assert.Fail($"job {status.JobId} did not reach the expected status within {s_jobTimeout}: state {status.State}, {status.TokenHeadsDone} of {status.TokenHeadsTotal} token-heads, {status.SegmentRestarts} restarts");
            }

            status = await job.GetStatusAsync();
        }

        return status;
    }

    private sealed class CallbackProgress(Action<JobProgress> report) : IProgress<JobProgress>
    {
        public void Report(JobProgress value) => report(value);
    }
}
