using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Text.Json;
using PowerRetention.FrontDoor.Tests.Support;
using PowerRetention.Grains;
using PowerRetention.Kernels;

namespace PowerRetention.FrontDoor.Tests;

/// <summary>
/// The silo runs in this process, so listeners here see the grains' instruments and activities as an
/// OpenTelemetry exporter in the silo would.
/// </summary>
[Collection(FrontDoorCollection.Name)]
public sealed class TelemetryTests(FrontDoorFixture fixture)
{
    [Fact]
    public async Task Job_RecordsMetricsAndOneTrace()
    {
        var counters = new ConcurrentDictionary<string, long>();
        var phases = new ConcurrentBag<string>();
        using var meters = new MeterListener();
        meters.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == RetentionTelemetry.Name)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        meters.SetMeasurementEventCallback<long>((instrument, value, tags, state) => counters.AddOrUpdate(instrument.Name, value, (_, sum) => sum + value));
        meters.SetMeasurementEventCallback<double>((instrument, value, tags, state) =>
        {
            foreach (KeyValuePair<string, object?> tag in tags)
            {
                if (tag.Key == RetentionTelemetry.PhaseTag)
                {
                    phases.Add((string)tag.Value!);
                }
            }
        });
        meters.Start();

        var activities = new ConcurrentBag<Activity>();
        using var tracing = new ActivityListener
        {
            ShouldListenTo = source => source.Name is RetentionTelemetry.Name or "Microsoft.Orleans.Application" or "Microsoft.Orleans.Runtime",
            Sample = (ref ActivityCreationOptions<ActivityContext> options) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activities.Add,
        };
        ActivitySource.AddActivityListener(tracing);

        RetentionInputs inputs = SyntheticInputs.Create(batch: 1, time: 200, heads: 2, keyDim: 8, queryHeads: 4, gating: true, seed: 5);
        string location = await Api.SubmitAsync(fixture.Http, Api.Safetensors(inputs), "?chunk_size=32");
        JsonElement status = await Api.WaitFinishedAsync(fixture.Http, location);
        Assert.Equal("completed", status.GetProperty("state").GetString());
        string jobId = status.GetProperty("id").GetString()!;

        // Phase activities stop just before the worker reports to the coordinator, so they may trail the status.
        await Api.WaitUntilAsync(() => activities.Any(a => a.OperationName == RetentionTelemetry.JobActivityName && Tag(a, "powerret.job.id") == jobId), $"the job activity of {location} stopped");
        meters.RecordObservableInstruments();

        Assert.Equal(200, counters.GetValueOrDefault(RetentionTelemetry.TokensProcessedName));
        Assert.Equal(200 * 4, counters.GetValueOrDefault(RetentionTelemetry.TokenHeadsProcessedName));
        Assert.Contains(RetentionTelemetry.OutputPhase, phases);

        Activity job = activities.Single(a => a.OperationName == RetentionTelemetry.JobActivityName && Tag(a, "powerret.job.id") == jobId);
        Activity[] phaseActivities = [.. activities.Where(a => a.OperationName == RetentionTelemetry.PhaseActivityName && Tag(a, "powerret.job.id") == jobId)];
        Assert.NotEmpty(phaseActivities);
        Assert.All(phaseActivities, phase => Assert.Equal(job.TraceId, phase.TraceId));
        Assert.Contains(activities, a => a.Source.Name == "Microsoft.Orleans.Application" && a.TraceId == job.TraceId);
    }

    private static string? Tag(Activity activity, string name) => activity.GetTagItem(name)?.ToString();
}
