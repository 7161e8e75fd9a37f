using System.Net;
using System.Text.Json;
using PowerRetention.FrontDoor.Tests.Support;
using PowerRetention.Kernels;

namespace PowerRetention.FrontDoor.Tests;

[Collection(FrontDoorCollection.Name)]
public sealed class CancelTests(FrontDoorFixture fixture)
{
    [Fact]
    public async Task Delete_RunningJob_Cancels()
    {
        RetentionInputs inputs = SyntheticInputs.Create(batch: 1, time: 256, heads: 2, keyDim: 8, gating: true);
        fixture.Gate.Close();
        try
        {
            string location = await Api.SubmitAsync(fixture.Http, Api.Safetensors(inputs), "?chunk_size=32");
            await Api.WaitUntilAsync(() => fixture.Gate.Waiting > 0, $"a work item of {location} waits at the closed compute gate of the silo at {fixture.Gateway}");

            using HttpResponseMessage early = await fixture.Http.GetAsync(location + "/output");
            await Api.ExpectProblemAsync(early, HttpStatusCode.Conflict, "is running");

            using HttpResponseMessage deleted = await fixture.Http.DeleteAsync(location);
            string body = await Api.ExpectAsync(deleted, HttpStatusCode.Accepted);
            using JsonDocument answer = JsonDocument.Parse(body);
            Assert.Equal("cancelled", answer.RootElement.GetProperty("state").GetString());

            JsonElement status = await Api.GetStatusAsync(fixture.Http, location);
            Assert.Equal("cancelled", status.GetProperty("state").GetString());
            Assert.Equal(JsonValueKind.Null, status.GetProperty("output").ValueKind);

            using HttpResponseMessage output = await fixture.Http.GetAsync(location + "/output");
            await Api.ExpectProblemAsync(output, HttpStatusCode.Conflict, "was cancelled");
        }
        finally
        {
            fixture.Gate.Open();
        }
    }
}
