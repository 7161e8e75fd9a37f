using System.Net;
using System.Text;
using PowerRetention.FrontDoor.Tests.Support;
using PowerRetention.Kernels;

namespace PowerRetention.FrontDoor.Tests;

[Collection(FrontDoorCollection.Name)]
public sealed class BadRequestTests(FrontDoorFixture fixture)
{
    private static RetentionInputs Small() => SyntheticInputs.Create(batch: 1, time: 32, heads: 1, keyDim: 8, gating: true);

    [Fact]
    public async Task Body_NotSafetensors_400()
    {
        using HttpResponseMessage response = await Api.PostJobAsync(fixture.Http, Encoding.UTF8.GetBytes("this is not a safetensors file"));
        await Api.ExpectProblemAsync(response, HttpStatusCode.BadRequest, "not a valid safetensors file");
    }

    [Fact]
    public async Task Body_Empty_400()
    {
        using HttpResponseMessage response = await Api.PostJobAsync(fixture.Http, []);
        await Api.ExpectProblemAsync(response, HttpStatusCode.BadRequest, "not a valid safetensors file");
    }

    [Fact]
    public async Task Body_MissingV_400()
    {
        RetentionInputs inputs = Small();
        using HttpResponseMessage response = await Api.PostJobAsync(fixture.Http, Api.Safetensors(("q", inputs.Q), ("k", inputs.K)));
        await Api.ExpectProblemAsync(response, HttpStatusCode.BadRequest, "no tensor 'v'");
    }

    [Fact]
    public async Task Body_MismatchedLength_400()
    {
        RetentionInputs inputs = Small();
        using Tensor shortK = Tensor.Zeros(DataType.Float32, 1, 31, 1, 8);
        using HttpResponseMessage response = await Api.PostJobAsync(fixture.Http, Api.Safetensors(("q", inputs.Q), ("k", shortK), ("v", inputs.V)));
        await Api.ExpectProblemAsync(response, HttpStatusCode.BadRequest, "K");
    }

    [Fact]
    public async Task Body_NaN_400()
    {
        RetentionInputs inputs = Small();
        float[] values = inputs.Q.ToSingleArray();
        values[100] = float.NaN;
        using Tensor q = Tensor.FromArray(values, 1, 32, 1, 8);
        using HttpResponseMessage response = await Api.PostJobAsync(fixture.Http, Api.Safetensors(("q", q), ("k", inputs.K), ("v", inputs.V)));
        await Api.ExpectProblemAsync(response, HttpStatusCode.BadRequest, "NaN");
    }

    [Fact]
    public async Task Body_PositiveLogGate_400()
    {
        RetentionInputs inputs = Small();
        float[] gates = inputs.LogG!.ToSingleArray();
        gates[5] = 0.5f;
        using Tensor logG = Tensor.FromArray(gates, 1, 32, 1);
        using HttpResponseMessage response = await Api.PostJobAsync(fixture.Http, Api.Safetensors(("q", inputs.Q), ("k", inputs.K), ("v", inputs.V), ("log_g", logG)));
        await Api.ExpectProblemAsync(response, HttpStatusCode.BadRequest, "log_G");
    }

    [Theory]
    [InlineData("?deg=two", "'deg' must be an integer")]
    [InlineData("?chunk_size=1.5", "'chunk_size' must be an integer")]
    [InlineData("?scale=big", "'scale' must be a number")]
    [InlineData("?final_state=yes", "'final_state' must be true or false")]
    [InlineData("?degree=2", "Unknown query parameter 'degree'")]
    [InlineData("?deg=2&deg=4", "'deg' is given 2 times")]
    [InlineData("?deg=3", "3")]
    [InlineData("?chunk_size=-1", "-1")]
    public async Task Query_Invalid_400(string query, string detailPart)
    {
        using HttpResponseMessage response = await Api.PostJobAsync(fixture.Http, Api.Safetensors(Small()), query);
        await Api.ExpectProblemAsync(response, HttpStatusCode.BadRequest, detailPart);
    }

    [Fact]
    public async Task Body_OverLimit_413()
    {
        byte[] body = new byte[FrontDoorFixture.MaxBodyBytes + 1];
        using HttpResponseMessage response = await Api.PostJobAsync(fixture.Http, body);
        await Api.ExpectProblemAsync(response, HttpStatusCode.RequestEntityTooLarge, $"{FrontDoorFixture.MaxBodyBytes} bytes");
    }

    [Fact]
    public async Task Body_OverLimitChunked_413()
    {
        // Without Content-Length the front door counts the bytes as they arrive.
        var content = new StreamContent(new MemoryStream(new byte[FrontDoorFixture.MaxBodyBytes + 1]));
        content.Headers.ContentLength = null;
        using var request = new HttpRequestMessage(HttpMethod.Post, "/jobs") { Content = content };
        request.Headers.TransferEncodingChunked = true;
        using HttpResponseMessage response = await fixture.Http.SendAsync(request);
        await Api.ExpectProblemAsync(response, HttpStatusCode.RequestEntityTooLarge, $"{FrontDoorFixture.MaxBodyBytes} bytes");
    }

    [Theory]
    [InlineData("/jobs/3f2504e0-4f89-11d3-9a0c-0305e82c3301")]
    [InlineData("/jobs/3f2504e0-4f89-11d3-9a0c-0305e82c3301/output")]
    [InlineData("/jobs/3f2504e0-4f89-11d3-9a0c-0305e82c3301/state")]
    [InlineData("/jobs/not-a-job")]
    public async Task Job_Unknown_404(string path)
    {
        using HttpResponseMessage response = await fixture.Http.GetAsync(path);
        await Api.ExpectProblemAsync(response, HttpStatusCode.NotFound, "not found");
    }

    [Fact]
    public async Task Delete_Unknown_404()
    {
        using HttpResponseMessage response = await fixture.Http.DeleteAsync("/jobs/3f2504e0-4f89-11d3-9a0c-0305e82c3301");
        await Api.ExpectProblemAsync(response, HttpStatusCode.NotFound, "not found");
    }
}
