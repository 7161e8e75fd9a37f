using PowerRetention.Client;
using PowerRetention.Kernels;

namespace PowerRetention.Grains.Tests;

[Collection(ClusterCollection.Name)]
public sealed class MemorySessionStorageTests(MemorySessionClusterFixture cluster) : IClassFixture<MemorySessionClusterFixture>
{
    [Fact]
    public async Task SessionFromState_ReloadsAfterDeactivation()
    {
        const int Prefill = 30, Total = 45;
        RetentionInputs inputs = SessionTestData.Inputs(Total, seed: 71, gated: true);
        double[] expected = SessionTestData.QuadraticForm(inputs, degree: 2);
        RetentionInputs prefill = SessionTestData.Slice(inputs, 0, Prefill);
        RetentionState? prefillState = Retention.Compute(prefill.Q, prefill.K, prefill.V, prefill.LogG, options: new RetentionOptions { ChunkSize = 8, ReturnFinalState = true }).FinalState;
        DecodeSession session = await cluster.Client.StartSessionFromStateAsync(prefillState!, new DecodeSessionSpec { QueryHeads = SessionTestData.QueryHeads, SwitchOverSeqLen = 4 });
        IDecodeSessionGrain grain = cluster.Cluster.Client.GetGrain<IDecodeSessionGrain>(session.Id);
        Guid firstActivation = session.Info.ActivationId;

        for (int t = Prefill; t < Total; t += 3)
        {
            if (t == Prefill + 6)
            {
                await cluster.Cluster.DeactivateAsync(grain);
            }

            RetentionInputs part = SessionTestData.Slice(inputs, t, t + 3);
            float[] actual = await session.StepAsync(part.Q.ToSingleArray(), part.K.ToSingleArray(), part.V.ToSingleArray(), part.LogG!.ToSingleArray());
            TestData.Within(TestData.RelativeError(actual, SessionTestData.Rows(expected, t, t + 3)), 1e-4, $"session {session.Id}, tokens {t}..{t + 3}");
        }

        DecodeSessionInfo info = await session.GetInfoAsync();
        Assert.NotEqual(firstActivation, info.ActivationId);
        Assert.Equal(Total - Prefill, info.Position);
        RetentionState? whole = Retention.Compute(inputs.Q, inputs.K, inputs.V, inputs.LogG, options: new RetentionOptions { ChunkSize = 8, ReturnFinalState = true }).FinalState;
        RetentionState exported = await session.ExportAsync();
        for (int unit = 0; unit < whole!.HeadStates.Count; unit++)
        {
            TestData.Within(TestData.RelativeError(exported.HeadStates[unit].Values, whole.HeadStates[unit].Values), 1e-4, $"exported S of unit {unit}");
            TestData.Within(TestData.RelativeError(exported.HeadStates[unit].Normalizer, whole.HeadStates[unit].Normalizer), 1e-4, $"exported s of unit {unit}");
        }

        await session.DropAsync();
        var missing = await Assert.ThrowsAsync<InvalidOperationException>(() => cluster.Client.OpenSessionAsync(session.Id));
        Assert.Contains(session.Id, missing.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ExportedStateFile_StartsEquivalentSession()
    {
        RetentionInputs inputs = SessionTestData.Inputs(12, seed: 72, gated: true);
        DecodeSession original = await cluster.Client.StartSessionAsync(SessionTestData.Spec(degree: 4, switchOver: 3));
        RetentionInputs history = SessionTestData.Slice(inputs, 0, 10);
        await original.StepAsync(history.Q, history.K, history.V, history.LogG);
        string path = Path.Combine(Directory.CreateTempSubdirectory("powerret-sessions-").FullName, "state.bin");
        await original.ExportAsync(path);

        DecodeSession copy = await cluster.Client.StartSessionFromStateFileAsync(path, new DecodeSessionSpec { QueryHeads = SessionTestData.QueryHeads, SwitchOverSeqLen = 3 });
        RetentionInputs next = SessionTestData.Slice(inputs, 10, 12);
        float[] fromOriginal = (await original.StepAsync(next.Q, next.K, next.V, next.LogG)).ToSingleArray();
        float[] fromCopy = (await copy.StepAsync(next.Q, next.K, next.V, next.LogG)).ToSingleArray();

        Assert.Equal("state file", copy.Info.Origin);
        Assert.Equal(4, copy.Info.Degree);
        TestData.Within(TestData.RelativeError(fromCopy, fromOriginal), 1e-5, $"session {copy.Id} started from the export of {original.Id}");
        Assert.Equal(["state.bin"], TestData.FilesIn(Path.GetDirectoryName(path)!));
        await original.DropAsync();
        await copy.DropAsync();
    }
}
