using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using PowerRetention.Kernels;
using PowerRetention.Kernels.IO;

namespace PowerRetention.FrontDoor.Tests.Support;

/// <summary>Requests to the front door and checks of its responses, with failure messages that show the request and the body.</summary>
internal static class Api
{
    public static readonly TimeSpan JobTimeout = TimeSpan.FromSeconds(60);

    /// <summary>Returns the bytes of a safetensors file holding <paramref name="tensors"/>.</summary>
    public static byte[] Safetensors(params (string Name, Tensor Tensor)[] tensors)
    {
        string path = Path.Combine(Path.GetTempPath(), $"powerret-frontdoor-test-{Guid.NewGuid():N}.safetensors");
        try
        {
            SafetensorsFile.Write(path, tensors.ToDictionary(t => t.Name, t => t.Tensor));
            return File.ReadAllBytes(path);
        }
        finally
        {
            File.Delete(path);
        }
    }

    public static byte[] Safetensors(RetentionInputs inputs) =>
        inputs.LogG is null
            ? Safetensors(("q", inputs.Q), ("k", inputs.K), ("v", inputs.V))
            : Safetensors(("q", inputs.Q), ("k", inputs.K), ("v", inputs.V), ("log_g", inputs.LogG));

    public static Task<HttpResponseMessage> PostJobAsync(HttpClient http, byte[] body, string query = "")
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        return http.PostAsync("/jobs" + query, content);
    }

    /// <summary>Asserts the status code, showing the request and the response body when it differs.</summary>
    public static async Task<string> ExpectAsync(HttpResponseMessage response, HttpStatusCode expected)
    {
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(
            response.StatusCode == expected,
            $"{response.RequestMessage?.Method} {response.RequestMessage?.RequestUri} returned {(int)response.StatusCode} {response.StatusCode}, expected {(int)expected} {expected}. Body: {body}");
        return body;
    }

    /// <summary>Asserts a problem-details response with <paramref name="expected"/> and a detail containing <paramref name="detailPart"/>.</summary>
    public static async Task ExpectProblemAsync(HttpResponseMessage response, HttpStatusCode expected, string detailPart)
    {
        string body = await ExpectAsync(response, expected);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using JsonDocument problem = JsonDocument.Parse(body);
        string detail = problem.RootElement.GetProperty("detail").GetString() ?? "";
        Assert.True(detail.Contains(detailPart, StringComparison.Ordinal), $"Problem detail '{detail}' does not mention '{detailPart}'.");
        Assert.Equal((int)expected, problem.RootElement.GetProperty("status").GetInt32());
    }

    /// <summary>Submits a job and returns its status URL after checking the 202 response.</summary>
    public static async Task<string> SubmitAsync(HttpClient http, byte[] body, string query = "")
    {
        using HttpResponseMessage response = await PostJobAsync(http, body, query);
        string json = await ExpectAsync(response, HttpStatusCode.Accepted);
        string location = response.Headers.Location?.ToString() ?? throw new InvalidOperationException($"POST /jobs{query} returned 202 without a Location header. Body: {json}");
        using JsonDocument status = JsonDocument.Parse(json);
        Assert.Equal(location, "/jobs/" + status.RootElement.GetProperty("id").GetString());
        return location;
    }

    public static async Task<JsonElement> GetStatusAsync(HttpClient http, string location)
    {
        using HttpResponseMessage response = await http.GetAsync(location);
        string json = await ExpectAsync(response, HttpStatusCode.OK);
        return JsonDocument.Parse(json).RootElement.Clone();
    }

    /// <summary>Polls the status until the job leaves "running"; fails with the last status after <see cref="JobTimeout"/>.</summary>
    public static async Task<JsonElement> WaitFinishedAsync(HttpClient http, string location)
    {
        DateTime deadline = DateTime.UtcNow + JobTimeout;
        while (true)
        {
            JsonElement status = await GetStatusAsync(http, location);
            if (status.GetProperty("state").GetString() != "running")
            {
                return status;
            }

            Assert.True(DateTime.UtcNow < deadline, $"GET {location}: the job still runs after {JobTimeout.TotalSeconds} s. Last status: {status}");
            await Task.Delay(50);
        }
    }

    /// <summary>Waits until <paramref name="condition"/> holds; fails with <paramref name="description"/> after 30 s.</summary>
    public static async Task WaitUntilAsync(Func<bool> condition, string description)
    {
        DateTime deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"Timed out after 30 s waiting until {description}.");
            await Task.Delay(20);
        }
    }

    public static double RelativeError(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        double difference = 0, norm = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            double delta = (double)actual[i] - expected[i];
            difference += delta * delta;
            norm += (double)expected[i] * expected[i];
        }

        return norm == 0 ? Math.Sqrt(difference) : Math.Sqrt(difference / norm);
    }
}
