using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using PowerRetention.FrontDoor.Tests.Support;
using PowerRetention.Kernels;
using PowerRetention.Kernels.IO;

namespace PowerRetention.FrontDoor.Tests;

[Collection(FrontDoorCollection.Name)]
public sealed class FileJobTests(FrontDoorFixture fixture) : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("powerret-frontdoor-files-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task Files_WritesOutputFile()
    {
        RetentionInputs inputs = SyntheticInputs.Create(batch: 1, time: 200, heads: 2, keyDim: 8, queryHeads: 4, gating: true, seed: 3);
        Dictionary<string, object?> request = WriteNpy(inputs);
        string output = Path.Combine(_folder, "y.npy");
        request["out"] = output;
        request["chunk_size"] = 32;

        using HttpResponseMessage response = await fixture.Http.PostAsJsonAsync("/jobs/files", request);
        string body = await Api.ExpectAsync(response, HttpStatusCode.Accepted);
        string location = response.Headers.Location?.ToString() ?? throw new InvalidOperationException($"POST /jobs/files returned 202 without Location. Body: {body}");
        JsonElement status = await Api.WaitFinishedAsync(fixture.Http, location);
        Assert.Equal("completed", status.GetProperty("state").GetString());
        Assert.Equal("files", status.GetProperty("kind").GetString());

        Assert.True(File.Exists(output), $"Job {location} completed but {output} does not exist.");
        using Tensor y = NpyFile.Read(output);
        RetentionResult expected = Retention.Compute(inputs.Q, inputs.K, inputs.V, inputs.LogG, options: new RetentionOptions { ChunkSize = 32 });
        double error = Api.RelativeError(y.ToSingleArray(), expected.Output.ToSingleArray());
        Assert.True(error <= 1e-4, $"{output}: relative error {error:E3} against Retention.Compute is above 1e-4.");

        using HttpResponseMessage download = await fixture.Http.GetAsync(location + "/output");
        await Api.ExpectAsync(download, HttpStatusCode.OK);
        Assert.Equal(await File.ReadAllBytesAsync(output), await download.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task Files_MissingInput_400()
    {
        RetentionInputs inputs = SyntheticInputs.Create(batch: 1, time: 20, heads: 1, keyDim: 8);
        Dictionary<string, object?> request = WriteNpy(inputs);
        string missing = Path.Combine(_folder, "absent.npy");
        request["q"] = missing;
        request["out"] = Path.Combine(_folder, "y.npy");

        using HttpResponseMessage response = await fixture.Http.PostAsJsonAsync("/jobs/files", request);
        await Api.ExpectProblemAsync(response, HttpStatusCode.BadRequest, missing);
        Assert.False(File.Exists(Path.Combine(_folder, "y.npy")), "A rejected file job left an output file.");
    }

    [Theory]
    [InlineData("{\"q\": \"q.npy\", \"k\": \"/k.npy\", \"v\": \"/v.npy\", \"out\": \"/y.npy\"}", "absolute path")]
    [InlineData("{\"k\": \"/k.npy\", \"v\": \"/v.npy\", \"out\": \"/y.npy\"}", "\"q\"")]
    [InlineData("{\"safetensors\": \"/x.safetensors\"}", "\"out\" is missing")]
    [InlineData("{\"safetensors\": \"/x.safetensors\", \"out\": \"/y.txt\"}", ".npy or .safetensors")]
    [InlineData("{\"safetensors\": \"/x.safetensors\", \"q\": \"/q.npy\", \"out\": \"/y.npy\"}", "not both")]
    [InlineData("{\"safetensors\": \"/x.safetensors\", \"out\": \"/y.npy\", \"degree\": 2}", "degree")]
    [InlineData("not json", "not a valid file-job JSON object")]
    public async Task Files_InvalidRequest_400(string json, string detailPart)
    {
        using var content = new StringContent(json, System.Text.Encoding.UTF8, "application/json");
        using HttpResponseMessage response = await fixture.Http.PostAsync("/jobs/files", content);
        await Api.ExpectProblemAsync(response, HttpStatusCode.BadRequest, detailPart);
    }

    private Dictionary<string, object?> WriteNpy(RetentionInputs inputs)
    {
        var request = new Dictionary<string, object?>();
        foreach ((string name, Tensor? tensor) in new[] { ("q", inputs.Q), ("k", inputs.K), ("v", inputs.V), ("log_g", inputs.LogG) })
        {
            if (tensor is not null)
            {
                string path = Path.Combine(_folder, name + ".npy");
                NpyFile.Write(path, tensor);
                request[name] = path;
            }
        }

        return request;
    }
}
