using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text.Json;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using Microsoft.Extensions.DependencyInjection;
using PowerRetention.Kernels;
using PowerRetention.Kernels.IO;

namespace PowerRetention.AppHost.Tests;

/// <summary>
/// Starts the whole app host under Aspire's orchestrator (DCP): two silo processes, the front door
/// and the dashboard, on free loopback ports (the testing builder picks the dashboard's). One job goes
/// through the front door over HTTP, and its span is read back from the dashboard's telemetry HTTP API
/// (<c>/api/telemetry/spans</c>, Aspire 13.6), to which the front door exported it over OTLP.
/// </summary>
public sealed class AppHostTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task AppHost_RunsJobAndExportsTrace()
    {
        var stopwatch = System.Diagnostics.Stopwatch.StartNew();
        using var timeout = new CancellationTokenSource(s_timeout);
        CancellationToken cancellationToken = timeout.Token;
        int siloPort = FreeConsecutivePorts(2), gatewayPort = FreeConsecutivePorts(2);
        int frontDoorPort = FreePort();
        string apiKey = Guid.NewGuid().ToString("N");

        IDistributedApplicationTestingBuilder builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.PowerRetention_AppHost>(
            [],
            (options, settings) =>
            {
                options.DisableDashboard = false;
                options.AllowUnsecuredTransport = true;
            },
            cancellationToken);
        builder.Configuration["Silos"] = "2";
        builder.Configuration["SiloPort"] = $"{siloPort}";
        builder.Configuration["GatewayPort"] = $"{gatewayPort}";
        builder.Configuration["FrontDoorPort"] = $"{frontDoorPort}";
        builder.Configuration["AppHost:DashboardApiKey"] = apiKey;

        await using DistributedApplication app = await builder.BuildAsync(cancellationToken);
        await app.StartAsync(cancellationToken);
        output.WriteLine($"{stopwatch.Elapsed}: started");
        await WaitHealthyAsync(app, "frontdoor", cancellationToken);
        output.WriteLine($"{stopwatch.Elapsed}: front door healthy");

        using HttpClient frontDoor = app.CreateHttpClient("frontdoor", "http");
        RetentionInputs inputs = SyntheticInputs.Create(batch: 1, time: 512, heads: 2, keyDim: 16, queryHeads: 4, gating: true, seed: 9);
        (string location, string jobId) = await SubmitAsync(frontDoor, inputs, cancellationToken);
        await WaitCompletedAsync(frontDoor, location, cancellationToken);
        output.WriteLine($"{stopwatch.Elapsed}: job completed");

        float[] y = await DownloadOutputAsync(frontDoor, location, cancellationToken);
        RetentionResult expected = Retention.Compute(inputs.Q, inputs.K, inputs.V, inputs.LogG, options: new RetentionOptions { ChunkSize = 64 });
        double error = RelativeError(y, expected.Output.ToSingleArray());
        Assert.True(error <= 1e-4, $"GET {frontDoor.BaseAddress}{location.TrimStart('/')}/output: relative error {error:E3} against Retention.Compute is above 1e-4.");

        Uri dashboard = app.GetEndpoint("aspire-dashboard", "http");
        output.WriteLine($"{stopwatch.Elapsed}: dashboard {dashboard}");
        JsonElement span = await FindJobSpanAsync(dashboard, apiKey, jobId, cancellationToken);
        Assert.Equal("streamed", Attribute(span, "powerret.job.input"));

        // The front door's Orleans client starts a child span per grain call, in the job's trace.
        string traceId = span.GetProperty("traceId").GetString()!;
        string[] scopes = await GetTraceScopesAsync(dashboard, apiKey, traceId, cancellationToken);
        Assert.Contains("Microsoft.Orleans.Application", scopes);
    }

    private static async Task WaitHealthyAsync(DistributedApplication app, string resource, CancellationToken cancellationToken)
    {
        try
        {
            await app.ResourceNotifications.WaitForResourceHealthyAsync(resource, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            ResourceNotificationService notifications = app.Services.GetRequiredService<ResourceNotificationService>();
            var states = new List<string>();
            foreach (string name in new[] { "silo0", "silo1", "frontdoor" })
            {
                states.Add(notifications.TryGetCurrentState(name, out ResourceEvent? state) ? $"{name}: {state.Snapshot.State?.Text} ({state.Snapshot.HealthStatus})" : $"{name}: unknown");
            }

            Assert.Fail($"Resource '{resource}' was not healthy within {s_timeout.TotalMinutes} minutes. States: {string.Join("; ", states)}");
        }
    }

    private static async Task<(string Location, string JobId)> SubmitAsync(HttpClient frontDoor, RetentionInputs inputs, CancellationToken cancellationToken)
    {
        string path = Path.Combine(Path.GetTempPath(), $"powerret-apphost-test-{Guid.NewGuid():N}.safetensors");
        try
        {
            SafetensorsFile.Write(path, new Dictionary<string, Tensor> { ["q"] = inputs.Q, ["k"] = inputs.K, ["v"] = inputs.V, ["log_g"] = inputs.LogG! });
            using var content = new ByteArrayContent(await File.ReadAllBytesAsync(path, cancellationToken));
            content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            using HttpResponseMessage response = await frontDoor.PostAsync("/jobs?chunk_size=64", content, cancellationToken);
            string body = await response.Content.ReadAsStringAsync(cancellationToken);
            Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"POST {frontDoor.BaseAddress}jobs returned {(int)response.StatusCode}, expected 202. Body: {body}");
            using JsonDocument status = JsonDocument.Parse(body);
            string location = response.Headers.Location?.ToString() ?? throw new InvalidOperationException($"POST {frontDoor.BaseAddress}jobs returned 202 without Location. Body: {body}");
            return (location, status.RootElement.GetProperty("id").GetString()!);
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static async Task WaitCompletedAsync(HttpClient frontDoor, string location, CancellationToken cancellationToken)
    {
        string last = "";
        try
        {
            while (true)
            {
                last = await frontDoor.GetStringAsync(location, cancellationToken);
                using JsonDocument status = JsonDocument.Parse(last);
                string? state = status.RootElement.GetProperty("state").GetString();
                if (state != "running")
                {
                    Assert.True(state == "completed", $"GET {frontDoor.BaseAddress}{location.TrimStart('/')}: the job ended {state}. Status: {last}");
                    return;
                }

                await Task.Delay(100, cancellationToken);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            Assert.Fail($"GET {frontDoor.BaseAddress}{location.TrimStart('/')}: the job did not finish in time. Last status: {last}");
        }
    }

    private static async Task<float[]> DownloadOutputAsync(HttpClient frontDoor, string location, CancellationToken cancellationToken)
    {
        using HttpResponseMessage response = await frontDoor.GetAsync(location + "/output", cancellationToken);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET {frontDoor.BaseAddress}{location.TrimStart('/')}/output returned {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(cancellationToken)}");
        string path = Path.Combine(Path.GetTempPath(), $"powerret-apphost-test-{Guid.NewGuid():N}.safetensors");
        try
        {
            await File.WriteAllBytesAsync(path, await response.Content.ReadAsByteArrayAsync(cancellationToken), cancellationToken);
            using SafetensorsReader reader = SafetensorsFile.Open(path);
            using Tensor y = reader.GetTensor("y");
            return y.ToSingleArray();
        }
        finally
        {
            File.Delete(path);
        }
    }

    // The front door exports its spans to the dashboard over OTLP; the dashboard serves them back as OTLP JSON.
    private static async Task<JsonElement> FindJobSpanAsync(Uri dashboard, string apiKey, string jobId, CancellationToken cancellationToken)
    {
        using var http = new HttpClient { BaseAddress = dashboard };
        http.DefaultRequestHeaders.Add("X-API-Key", apiKey);
        string address = "/api/telemetry/spans?resource=frontdoor&limit=1000";
        string last = "";
        try
        {
            while (true)
            {
                using HttpResponseMessage response = await http.GetAsync(address, cancellationToken);
                last = await response.Content.ReadAsStringAsync(cancellationToken);
                Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET {dashboard}{address.TrimStart('/')} returned {(int)response.StatusCode}: {last}");
                using JsonDocument spans = JsonDocument.Parse(last);
                foreach (JsonElement span in Spans(spans.RootElement))
                {
                    if (span.GetProperty("name").GetString() == "powerret.job" && Attribute(span, "powerret.job.id") == jobId)
                    {
                        return span.Clone();
                    }
                }

                await Task.Delay(500, cancellationToken);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            Assert.Fail($"GET {dashboard}{address.TrimStart('/')}: no powerret.job span of job {jobId} arrived in time. Last response: {last[..Math.Min(last.Length, 2000)]}");
            throw;
        }
    }

    private static async Task<string[]> GetTraceScopesAsync(Uri dashboard, string apiKey, string traceId, CancellationToken cancellationToken)
    {
        using var http = new HttpClient { BaseAddress = dashboard };
        http.DefaultRequestHeaders.Add("X-API-Key", apiKey);
        string address = $"/api/telemetry/spans?traceId={traceId}&limit=1000";
        using HttpResponseMessage response = await http.GetAsync(address, cancellationToken);
        string body = await response.Content.ReadAsStringAsync(cancellationToken);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET {dashboard}{address.TrimStart('/')} returned {(int)response.StatusCode}: {body}");
        using JsonDocument spans = JsonDocument.Parse(body);
        var scopes = new List<string>();
        foreach (JsonElement resource in spans.RootElement.GetProperty("data").GetProperty("resourceSpans").EnumerateArray())
        {
            foreach (JsonElement scope in resource.GetProperty("scopeSpans").EnumerateArray())
            {
                scopes.Add(scope.GetProperty("scope").GetProperty("name").GetString() ?? "");
            }
        }

        return [.. scopes.Distinct()];
    }

    private static IEnumerable<JsonElement> Spans(JsonElement root)
    {
        foreach (JsonElement resource in root.GetProperty("data").GetProperty("resourceSpans").EnumerateArray())
        {
            foreach (JsonElement scope in resource.GetProperty("scopeSpans").EnumerateArray())
            {
                foreach (JsonElement span in scope.GetProperty("spans").EnumerateArray())
                {
                    yield return span;
                }
            }
        }
    }

    private static string? Attribute(JsonElement span, string key)
    {
        if (!span.TryGetProperty("attributes", out JsonElement attributes))
        {
            return null;
        }

        foreach (JsonElement attribute in attributes.EnumerateArray())
        {
            if (attribute.GetProperty("key").GetString() == key)
            {
                return attribute.GetProperty("value").TryGetProperty("stringValue", out JsonElement value) ? value.GetString() : attribute.GetProperty("value").ToString();
            }
        }

        return null;
    }

    // Silo i listens on the first port + i, so the silos need a run of free ports. The search starts below
    // Linux's ephemeral range (32768 and up), where the system does not hand out ports by itself.
    private static int FreeConsecutivePorts(int count)
    {
        for (int first = Random.Shared.Next(20000, 32000); ; first = Random.Shared.Next(20000, 32000))
        {
            var listeners = new List<TcpListener>();
            try
            {
                for (int port = first; port < first + count; port++)
                {
                    var listener = new TcpListener(IPAddress.Loopback, port);
                    listener.Start();
                    listeners.Add(listener);
                }

                return first;
            }
            catch (SocketException)
            {
                // A port of this run is taken; try another run.
            }
            finally
            {
                listeners.ForEach(l => l.Stop());
            }
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static double RelativeError(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
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
