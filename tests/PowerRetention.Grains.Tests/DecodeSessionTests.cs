using Orleans.Runtime.Placement;
using Orleans.TestingHost;
using PowerRetention.Client;
using PowerRetention.Kernels;
using PowerRetention.Kernels.IO;

namespace PowerRetention.Grains.Tests;

[Collection(ClusterCollection.Name)]
public sealed class DecodeSessionTests(SessionClusterFixture cluster) : IClassFixture<SessionClusterFixture>
{
    private const double Tolerance = 1e-4;

    [Theory]
    [InlineData(2, true)]
    [InlineData(2, false)]
    [InlineData(4, true)]
    [InlineData(4, false)]
    public async Task SessionFromJob_MatchesQuadraticFormAcrossSiloRestart(int degree, bool gated)
    {
        const int Prefill = 40;
        int[] steps = [1, 3, 1, 7, 2, 1, 4, 1];
        RetentionInputs inputs = SessionTestData.Inputs(Prefill + steps.Sum(), seed: 50 + degree + (gated ? 1 : 0), gated);
        double[] expected = SessionTestData.QuadraticForm(inputs, degree);
        RetentionInputs prefill = SessionTestData.Slice(inputs, 0, Prefill);
        JobResult job = await cluster.Client.ProcessAsync(prefill.Q, prefill.K, prefill.V, prefill.LogG, options: new ProcessingOptions { Degree = degree, ChunkSize = 16, SegmentTokens = 16, ReturnFinalState = true });
        DecodeSession session = await OnSecondarySiloAsync(() => cluster.Client.StartSessionFromJobAsync(job.JobId, new DecodeSessionSpec { QueryHeads = SessionTestData.QueryHeads, SwitchOverSeqLen = 5 }));
        Assert.Equal($"job {job.JobId}", session.Info.Origin);
        Assert.Equal(degree, session.Info.Degree);

        int position = Prefill;
        DecodeSessionInfo? beforeRestart = null;
        for (int i = 0; i < steps.Length; i++)
        {
            if (i == steps.Length / 2)
            {
                beforeRestart = await session.GetInfoAsync();
                SiloHandle victim = cluster.Cluster.Silos.Single(s => s.SiloAddress.ToString() == beforeRestart.Silo);
                await cluster.Cluster.KillSiloAsync(victim);
                await cluster.Cluster.StartAdditionalSiloAsync();
            }

            RetentionInputs part = SessionTestData.Slice(inputs, position, position + steps[i]);
            float[] actual = (await session.StepAsync(part.Q, part.K, part.V, part.LogG)).ToSingleArray();
            float[] expectedRows = SessionTestData.Rows(expected, position, position + steps[i]);
            TestData.Within(TestData.RelativeError(actual, expectedRows), Tolerance, $"session {session.Id}, tokens {position}..{position + steps[i]} (p={degree}, gated={gated})");
            position += steps[i];
        }

        DecodeSessionInfo after = await session.GetInfoAsync();
        Assert.True(after.Silo != beforeRestart!.Silo, $"session {session.Id} is still on {after.Silo} after that silo was killed");
        Assert.NotEqual(beforeRestart.ActivationId, after.ActivationId);
        Assert.Equal(steps.Sum(), after.Position);
        await session.DropAsync();
    }

    [Fact]
    public async Task ConcurrentSteps_EachAppliedOnce()
    {
        const int Steps = 8;
        RetentionInputs inputs = SessionTestData.Inputs(Steps, seed: 61, gated: true);
        DecodeSession session = await cluster.Client.StartSessionAsync(SessionTestData.Spec(switchOver: 3));

        Task<DecodeStepResult>[] calls = Enumerable.Range(0, Steps).Select(i => session.StepAsync(Request(Guid.NewGuid(), SessionTestData.Slice(inputs, i, i + 1)))).ToArray();
        DecodeStepResult[] results = await Task.WhenAll(calls);

        Assert.Equal(Enumerable.Range(1, Steps).Select(p => (long)p), results.Select(r => r.Position).Order());
        Assert.All(results, r => Assert.False(r.Repeated, $"step {r.StepId} was reported as repeated"));

        // Replays the tokens locally in the order the session applied them.
        var local = new DecodeState(1, SessionTestData.Heads, SessionTestData.QueryHeads, SessionTestData.Dim, SessionTestData.Dim, switchOverSeqLen: 3);
        foreach (int i in Enumerable.Range(0, Steps).OrderBy(i => results[i].Position))
        {
            RetentionInputs part = SessionTestData.Slice(inputs, i, i + 1);
            float[] expectedRows = local.Step(part.Q, part.K, part.V, part.LogG).ToSingleArray();
            float[] actual = results[i].Output.ToTensor("Y").ToSingleArray();
            Assert.True(SessionTestData.MaxDifference(actual, expectedRows) <= 1e-6, $"step {results[i].StepId} at position {results[i].Position}: max difference {SessionTestData.MaxDifference(actual, expectedRows):E3}");
        }

        DecodeSessionInfo info = await session.GetInfoAsync();
        Assert.Equal(Steps, info.Position);
        Assert.Equal(local.CacheLength, info.CacheLength);
        AssertSameState(local.ToState(), await session.ExportAsync(), $"session {session.Id} after {Steps} concurrent steps");
        await session.DropAsync();
    }

    [Fact]
    public async Task RetriedStep_NotAppliedTwice()
    {
        RetentionInputs inputs = SessionTestData.Inputs(3, seed: 62, gated: true);
        DecodeSession session = await cluster.Client.StartSessionAsync(SessionTestData.Spec());
        var first = Guid.NewGuid();

        DecodeStepResult applied = await session.StepAsync(Request(first, SessionTestData.Slice(inputs, 0, 1)));
        DecodeStepResult retried = await session.StepAsync(Request(first, SessionTestData.Slice(inputs, 1, 2)));

        Assert.False(applied.Repeated);
        Assert.True(retried.Repeated, $"retry of step {first} was applied again");
        Assert.Equal(1, retried.Position);
        Assert.Equal(applied.Output.Data, retried.Output.Data);

        DecodeStepResult second = await session.StepAsync(Request(Guid.NewGuid(), SessionTestData.Slice(inputs, 1, 2)));
        Assert.Equal(2, second.Position);
        var late = await Assert.ThrowsAsync<InvalidOperationException>(() => session.StepAsync(Request(first, SessionTestData.Slice(inputs, 2, 3))));
        Assert.Contains(first.ToString(), late.Message, StringComparison.Ordinal);

        DecodeState local = LocalDecode(inputs, 0, 2, switchOver: 5);
        Assert.Equal(2, (await session.GetInfoAsync()).Position);
        AssertSameState(local.ToState(), await session.ExportAsync(), $"session {session.Id} after a retried step");
        await session.DropAsync();
    }

    [Fact]
    public async Task FailedStep_LeavesSessionUnchanged()
    {
        RetentionInputs inputs = SessionTestData.Inputs(6, seed: 63, gated: true);
        DecodeSession session = await cluster.Client.StartSessionAsync(SessionTestData.Spec(switchOver: 3));
        var local = new DecodeState(1, SessionTestData.Heads, SessionTestData.QueryHeads, SessionTestData.Dim, SessionTestData.Dim, switchOverSeqLen: 3);
        await StepBothAsync(session, local, inputs, 0, 2);
        RetentionState before = await session.ExportAsync();
        RetentionInputs next = SessionTestData.Slice(inputs, 2, 3);

        Tensor nanQuery = next.Q.ConvertTo(DataType.Float32);
        nanQuery.Storage.Write(11, [float.NaN]);
        var nan = await Assert.ThrowsAsync<ArgumentException>(() => session.StepAsync(nanQuery, next.K, next.V, next.LogG));
        Assert.Contains("Q[0, 0, 1, 3]", nan.Message, StringComparison.Ordinal);
        await AssertUnchangedAsync(session, before, 2, "NaN query");

        Tensor positiveGate = Tensor.FromArray([0.5f, -0.1f], 1, 1, SessionTestData.Heads);
        var gate = await Assert.ThrowsAsync<ArgumentException>(() => session.StepAsync(next.Q, next.K, next.V, positiveGate));
        Assert.Contains("log_G[0, 0, 0]", gate.Message, StringComparison.Ordinal);
        await AssertUnchangedAsync(session, before, 2, "positive log-gate");

        RetentionInputs narrow = SyntheticInputs.Create(1, 1, SessionTestData.Heads, 6, SessionTestData.QueryHeads, 6, gating: true, seed: 5);
        var shape = await Assert.ThrowsAsync<ArgumentException>(() => session.StepAsync(narrow.Q, narrow.K, narrow.V, narrow.LogG));
        Assert.Contains("do not match the session", shape.Message, StringComparison.Ordinal);
        await AssertUnchangedAsync(session, before, 2, "wrong key dimension");

        RawTensor q = RawTensor.FromTensor(next.Q);
        var shortQuery = q with { Data = q.Data[..^4] };
        var bytes = await Assert.ThrowsAsync<ArgumentException>(() => session.StepAsync(Request(Guid.NewGuid(), next) with { Q = shortQuery }));
        Assert.Contains($"needs {q.Data.Length} bytes, but {q.Data.Length - 4} were sent", bytes.Message, StringComparison.Ordinal);
        await AssertUnchangedAsync(session, before, 2, "short query bytes");

        // A record write that fails leaves the step unapplied, so retrying its id applies it.
        var stepId = Guid.NewGuid();
        SharedTestStorage.FailNextWrite("record");
        var write = await Assert.ThrowsAsync<InvalidOperationException>(() => session.StepAsync(Request(stepId, next)));
        Assert.Contains("was not applied", write.Message, StringComparison.Ordinal);
        Assert.False(SharedTestStorage.FailurePending, "the injected record write failure was never hit");
        await AssertUnchangedAsync(session, before, 2, "failed record write");
        DecodeStepResult retried = await session.StepAsync(Request(stepId, next));
        Assert.False(retried.Repeated, $"step {stepId} was reported as applied although its write failed");
        AssertOutput(local.Step(next.Q, next.K, next.V, next.LogG), retried, "step after a failed record write");

        // The cache is now full, so the next step folds it and writes a new base first.
        before = await session.ExportAsync();
        RetentionInputs folding = SessionTestData.Slice(inputs, 3, 5);
        SharedTestStorage.FailNextWrite("base-");
        await Assert.ThrowsAsync<InvalidOperationException>(() => session.StepAsync(Request(Guid.NewGuid(), folding)));
        Assert.False(SharedTestStorage.FailurePending, "the injected base write failure was never hit");
        await AssertUnchangedAsync(session, before, 3, "failed base write");
        DecodeStepResult folded = await session.StepAsync(Request(Guid.NewGuid(), folding));
        AssertOutput(local.Step(folding.Q, folding.K, folding.V, folding.LogG), folded, "step after a failed base write");
        AssertSameState(local.ToState(), await session.ExportAsync(), $"session {session.Id} after failed steps");
        await session.DropAsync();
    }

    [Theory]
    [InlineData("version")]
    [InlineData("degree")]
    [InlineData("expanded_dim")]
    [InlineData("truncated")]
    [InlineData("key_dim")]
    [InlineData("heads")]
    public async Task BadStateFile_RejectedNamingField(string problem)
    {
        byte[] valid = StateFile.Serialize(RandomState(seed: 64));
        byte[] bytes = problem switch
        {
            "version" => Patch(valid, "version", 1, 2),
            "degree" => Patch(valid, "degree", 2, 3),
            "expanded_dim" => Patch(valid, "expanded_dim", 36, 37),
            "truncated" => valid[..^10],
            _ => valid,
        };
        DecodeSessionSpec spec = problem switch
        {
            "key_dim" => new DecodeSessionSpec { KeyDim = 16 },
            "heads" => new DecodeSessionSpec { Heads = 3 },
            _ => new DecodeSessionSpec(),
        };
        string path = Path.Combine(Directory.CreateTempSubdirectory("powerret-sessions-").FullName, "state.bin");
        await File.WriteAllBytesAsync(path, bytes);
        string sessionId = Guid.NewGuid().ToString("N");

        var error = await Assert.ThrowsAsync<ArgumentException>(() => cluster.Client.StartSessionFromStateFileAsync(path, spec, sessionId));

        Assert.Contains(problem, error.Message, StringComparison.Ordinal);
        Assert.StartsWith(path, error.Message, StringComparison.Ordinal);
        Assert.Null(await cluster.Cluster.Client.GetGrain<IDecodeSessionGrain>(sessionId).GetInfoAsync());
    }

    [Fact]
    public async Task CorruptStoredSession_ReportedAndDroppable()
    {
        DecodeSession session = await cluster.Client.StartSessionFromStateAsync(RandomState(seed: 65), SessionTestData.Spec() with { Heads = null, KeyDim = null, Degree = null });
        RetentionInputs inputs = SessionTestData.Inputs(1, seed: 66, gated: false);
        await session.StepAsync(inputs.Q, inputs.K, inputs.V);
        IDecodeSessionGrain grain = cluster.Cluster.Client.GetGrain<IDecodeSessionGrain>(session.Id);

        SharedTestStorage.Change(session.Id, "base-0", data => [.. data[..^1], (byte)(data[^1] ^ 1)]);
        await cluster.Cluster.DeactivateAsync(grain);
        var slot = await Assert.ThrowsAsync<InvalidOperationException>(() => session.GetInfoAsync());
        Assert.Contains("base state slot 0", slot.Message, StringComparison.Ordinal);

        SharedTestStorage.Change(session.Id, "record", data => Patch(data, "version", 1, 7));
        await cluster.Cluster.DeactivateAsync(grain);
        var record = await Assert.ThrowsAsync<InvalidOperationException>(() => session.StepAsync(inputs.Q, inputs.K, inputs.V));
        Assert.Contains("'version'", record.Message, StringComparison.Ordinal);

        await session.DropAsync();
        Assert.Null(await grain.GetInfoAsync());
        Assert.Null(SharedTestStorage.Read(session.Id, "record"));
    }

    [Fact]
    public void RecordFormat_RoundTripsAndNamesBadField()
    {
        var config = new SessionConfig(1, 2, 4, 8, 8, 2, 0.25f, 5);
        var cache = new CachedTokens(2, Enumerable.Range(0, 32).Select(i => (float)i).ToArray(), new float[32], [-0.5f, -0.25f, 0f, -1f]);
        var output = new RawTensor([1, 1, 4, 8], DataType.BFloat16, new byte[64]);
        var stepId = Guid.NewGuid();
        var snapshot = new SessionSnapshot(config, "empty", 7, null, null, cache, new StepRecord(stepId, 7, output), [new StepMark(Guid.NewGuid(), 6), new StepMark(stepId, 7)]);

        byte[] bytes = SessionRecordFormat.Encode(snapshot);
        SessionSnapshot decoded = SessionRecordFormat.Decode(bytes, "test record");

        Assert.Equal(config, decoded.Config);
        Assert.Equal(7, decoded.Position);
        Assert.Equal(cache.Keys, decoded.Cache.Keys);
        Assert.Equal(cache.LogGates, decoded.Cache.LogGates);
        Assert.Equal(stepId, decoded.LastStep!.StepId);
        Assert.Equal(DataType.BFloat16, decoded.LastStep.Output.DataType);
        Assert.Equal(snapshot.RecentSteps, decoded.RecentSteps);

        byte[] wrongTokens = Patch(bytes, "cache_tokens", 2, 3);
        var error = Assert.Throws<FileFormatException>(() => SessionRecordFormat.Decode(wrongTokens, "test record"));
        Assert.Contains("'cache_keys'", error.Message, StringComparison.Ordinal);
        var truncated = Assert.Throws<FileFormatException>(() => SessionRecordFormat.Decode(bytes[..^3], "test record"));
        Assert.Contains("truncated", truncated.Message, StringComparison.Ordinal);
    }

    internal static DecodeStepRequest Request(Guid stepId, RetentionInputs part) => new(
        stepId,
        RawTensor.FromTensor(part.Q),
        RawTensor.FromTensor(part.K),
        RawTensor.FromTensor(part.V),
        part.LogG is null ? null : RawTensor.FromTensor(part.LogG));

    internal static void AssertSameState(RetentionState expected, RetentionState actual, string context)
    {
        Assert.Equal(expected.HeadStates.Count, actual.HeadStates.Count);
        for (int unit = 0; unit < expected.HeadStates.Count; unit++)
        {
            double values = TestData.RelativeError(actual.HeadStates[unit].Values, expected.HeadStates[unit].Values);
            double normalizer = TestData.RelativeError(actual.HeadStates[unit].Normalizer, expected.HeadStates[unit].Normalizer);
            Assert.True(values <= 1e-6, $"{context}: S of unit {unit} differs by a relative error of {values:E3}");
            Assert.True(normalizer <= 1e-6, $"{context}: s of unit {unit} differs by a relative error of {normalizer:E3}");
        }
    }

    // Replaces the MessagePack positive fixint after the string key with another value.
    internal static byte[] Patch(byte[] data, string key, byte from, byte to)
    {
        byte[] pattern = [(byte)(0xa0 | key.Length), .. System.Text.Encoding.ASCII.GetBytes(key), from];
        int at = data.AsSpan().IndexOf(pattern);
        Assert.True(at >= 0, $"key '{key}' with value {from} not found in {data.Length} bytes");
        byte[] patched = (byte[])data.Clone();
        patched[at + pattern.Length - 1] = to;
        return patched;
    }

    private static RetentionState RandomState(int seed)
    {
        var random = new Random(seed);
        var state = new RetentionState(1, SessionTestData.Heads, SessionTestData.Dim, SessionTestData.Dim, 2);
        foreach (HeadState head in state.HeadStates)
        {
            for (int i = 0; i < head.Values.Length; i++)
            {
                head.Values[i] = (float)random.NextDouble() - 0.5f;
            }

            for (int i = 0; i < head.Normalizer.Length; i++)
            {
                head.Normalizer[i] = (float)random.NextDouble();
            }
        }

        return state;
    }

    private static DecodeState LocalDecode(RetentionInputs inputs, int start, int end, int switchOver)
    {
        var local = new DecodeState(1, SessionTestData.Heads, SessionTestData.QueryHeads, SessionTestData.Dim, SessionTestData.Dim, switchOverSeqLen: switchOver);
        for (int t = start; t < end; t++)
        {
            RetentionInputs part = SessionTestData.Slice(inputs, t, t + 1);
            local.Step(part.Q, part.K, part.V, part.LogG);
        }

        return local;
    }

    private static async Task StepBothAsync(DecodeSession session, DecodeState local, RetentionInputs inputs, int start, int end)
    {
        for (int t = start; t < end; t++)
        {
            RetentionInputs part = SessionTestData.Slice(inputs, t, t + 1);
            AssertOutput(local.Step(part.Q, part.K, part.V, part.LogG), await session.StepAsync(Request(Guid.NewGuid(), part)), $"token {t}");
        }
    }

    private static void AssertOutput(Tensor expected, DecodeStepResult result, string context)
    {
        double difference = SessionTestData.MaxDifference(result.Output.ToTensor("Y").ToSingleArray(), expected.ToSingleArray());
        Assert.True(difference <= 1e-6, $"{context}: step {result.StepId} output differs from a local decode state by {difference:E3}");
    }

    private static async Task AssertUnchangedAsync(DecodeSession session, RetentionState before, long position, string cause)
    {
        DecodeSessionInfo info = await session.GetInfoAsync();
        Assert.True(info.Position == position, $"after the {cause}, session {session.Id} is at position {info.Position}, expected {position}");
        RetentionState now = await session.ExportAsync();
        for (int unit = 0; unit < before.HeadStates.Count; unit++)
        {
            Assert.Equal(before.HeadStates[unit].Values, now.HeadStates[unit].Values);
            Assert.Equal(before.HeadStates[unit].Normalizer, now.HeadStates[unit].Normalizer);
        }
    }

    // Starts a session placed on a silo other than the primary, which hosts the test cluster's membership and cannot be killed.
    private async Task<DecodeSession> OnSecondarySiloAsync(Func<Task<DecodeSession>> start)
    {
        SiloHandle target = cluster.Cluster.Silos.First(s => s != cluster.Cluster.Primary);
        RequestContext.Set(IPlacementDirector.PlacementHintKey, target.SiloAddress);
        try
        {
            DecodeSession session = await start();
            Assert.True(session.Info.Silo == target.SiloAddress.ToString(), $"session {session.Id} was placed on {session.Info.Silo}, expected {target.SiloAddress}");
            return session;
        }
        finally
        {
            RequestContext.Remove(IPlacementDirector.PlacementHintKey);
        }
    }
}
