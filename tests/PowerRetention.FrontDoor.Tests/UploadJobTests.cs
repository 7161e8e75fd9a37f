using System.Net;
using System.Text.Json;
using PowerRetention.FrontDoor.Tests.Support;
using PowerRetention.Kernels;
using PowerRetention.Kernels.IO;

namespace PowerRetention.FrontDoor.Tests;

[Collection(FrontDoorCollection.Name)]
public sealed class UploadJobTests(FrontDoorFixture fixture)
{
    [Theory]
    [InlineData(DataType.Float32, 1e-4)]
    [InlineData(DataType.BFloat16, 1e-2)]
    public async Task Upload_ReturnsKernelOutput(DataType dataType, double bound)
    {
        RetentionInputs inputs = SyntheticInputs.Create(batch: 1, time: 300, heads: 2, keyDim: 16, queryHeads: 4, valueDim: 16, gating: true, seed: 7, dataType: dataType);
        string location = await Api.SubmitAsync(fixture.Http, Api.Safetensors(inputs), "?chunk_size=64&final_state=true");

        JsonElement status = await Api.WaitFinishedAsync(fixture.Http, location);
        Assert.Equal("completed", status.GetProperty("state").GetString());
        Assert.Equal(1.0, status.GetProperty("progress").GetDouble());
        Assert.Equal(300L * 4, status.GetProperty("token_heads_total").GetInt64());
        Assert.Equal(300L * 4, status.GetProperty("token_heads_done").GetInt64());
        Assert.Equal(location + "/output", status.GetProperty("output").GetString());
        Assert.Equal(location + "/state", status.GetProperty("final_state").GetString());

        RetentionResult expected = Retention.Compute(inputs.Q, inputs.K, inputs.V, inputs.LogG, options: new RetentionOptions { ChunkSize = 64, ReturnFinalState = true });
        using HttpResponseMessage output = await fixture.Http.GetAsync(location + "/output");
        await Api.ExpectAsync(output, HttpStatusCode.OK);
        string path = Path.Combine(Path.GetTempPath(), $"powerret-frontdoor-test-{Guid.NewGuid():N}.safetensors");
        try
        {
            await File.WriteAllBytesAsync(path, await output.Content.ReadAsByteArrayAsync());
            using SafetensorsReader reader = SafetensorsFile.Open(path);
            Assert.Equal(["y"], reader.TensorNames);
            using Tensor y = reader.GetTensor("y");
            Assert.Equal(dataType, y.DataType);
            Assert.Equal(expected.Output.Shape.ToArray(), y.Shape.ToArray());
            double error = Api.RelativeError(y.ToSingleArray(), expected.Output.ToSingleArray());
            Assert.True(error <= bound, $"GET {location}/output: relative error {error:E3} against Retention.Compute is above {bound:E1}.");
        }
        finally
        {
            File.Delete(path);
        }

        using HttpResponseMessage state = await fixture.Http.GetAsync(location + "/state");
        await Api.ExpectAsync(state, HttpStatusCode.OK);
        RetentionState final = StateFile.Deserialize(await state.Content.ReadAsByteArrayAsync(), "GET /state");
        Assert.Equal(expected.FinalState!.HeadStates.Count, final.HeadStates.Count);
        for (int unit = 0; unit < final.HeadStates.Count; unit++)
        {
            double stateError = Api.RelativeError(final.HeadStates[unit].Values, expected.FinalState.HeadStates[unit].Values);
            Assert.True(stateError <= 1e-4, $"GET {location}/state: unit {unit} differs from Retention.Compute's final state by {stateError:E3}.");
        }
    }

    [Fact]
    public async Task State_NotRequested_404()
    {
        RetentionInputs inputs = SyntheticInputs.Create(batch: 1, time: 40, heads: 1, keyDim: 8);
        string location = await Api.SubmitAsync(fixture.Http, Api.Safetensors(inputs));
        JsonElement status = await Api.WaitFinishedAsync(fixture.Http, location);
        Assert.Equal("completed", status.GetProperty("state").GetString());
        Assert.Equal(JsonValueKind.Null, status.GetProperty("final_state").ValueKind);

        using HttpResponseMessage state = await fixture.Http.GetAsync(location + "/state");
        await Api.ExpectProblemAsync(state, HttpStatusCode.NotFound, "final_state=true");
    }

    [Fact]
    public async Task Delete_FinishedJob_RemovesIt()
    {
        RetentionInputs inputs = SyntheticInputs.Create(batch: 1, time: 40, heads: 1, keyDim: 8);
        string location = await Api.SubmitAsync(fixture.Http, Api.Safetensors(inputs));
        await Api.WaitFinishedAsync(fixture.Http, location);

        using HttpResponseMessage deleted = await fixture.Http.DeleteAsync(location);
        await Api.ExpectAsync(deleted, HttpStatusCode.NoContent);
        using HttpResponseMessage removed = await fixture.Http.GetAsync(location);
        await Api.ExpectProblemAsync(removed, HttpStatusCode.NotFound, "not found");
    }
}
