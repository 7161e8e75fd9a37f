using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using PowerRetention.Client;
using PowerRetention.Grains;
using PowerRetention.Kernels;
using PowerRetention.Kernels.IO;

// Measures the latency of one decode step (h=8, hq=8, d=e=64, p=2, one token) after 1,000 and after
// 1,000,000 tokens of history, directly on DecodeState and through a decode session grain on an
// embedded one-silo cluster with memory session storage. Prints medians of the timed steps.
// Usage: decode-bench [--steps N] [--warmup N]
const int Heads = 8, Dim = 64, Degree = 2, ShortHistory = 1_000;
const long LongHistory = 1_000_000;
int steps = ReadOption(args, "--steps", 256);
int warmup = ReadOption(args, "--warmup", 32);

Console.WriteLine(Invariant($"decode step latency: b=1, h={Heads}, hq={Heads}, d=e={Dim}, p={Degree}, one token per step, switch-over {DecodeSessionSpec.DefaultSwitchOverSeqLen}; {steps} timed steps after {warmup} warm-up steps"));
Console.WriteLine(Invariant($"machine: {Environment.ProcessorCount} cores, {RuntimeDescription()}"));

// The 1,000-token history is a real prefill without gating. A 1,000,000-token prefill would take minutes on a
// few cores, and the cost of a step depends only on the state's size, which is the same for any history
// length. So the long history is that state scaled by 1,000, the magnitude an ungated sum of 1,000,000 similar
// tokens reaches.
RetentionInputs prefill = SyntheticInputs.Create(1, ShortHistory, Heads, Dim, gating: false, seed: 7);
var timer = Stopwatch.StartNew();
RetentionState shortState = Retention.Compute(prefill.Q, prefill.K, prefill.V, prefill.LogG, options: new RetentionOptions { ReturnFinalState = true }).FinalState!;
Console.WriteLine(Invariant($"prefill of {ShortHistory:N0} tokens: {timer.Elapsed.TotalMilliseconds:F0} ms"));
RetentionState longState = shortState.Clone();
foreach (HeadState head in longState.HeadStates)
{
    head.DecayAndAdd(1000f, new HeadState(head.Normalizer.Length, Dim));
}

byte[] stateFile = StateFile.Serialize(shortState);
Console.WriteLine(Invariant($"state size: {shortState.SizeInBytes:N0} bytes of S and s (D={shortState.ExpandedDim}); {stateFile.Length:N0} bytes as a state file"));

RetentionInputs tokens = SyntheticInputs.Create(1, warmup + steps, Heads, Dim, gating: false, seed: 8);
Tensor?[][] perToken = Enumerable.Range(0, warmup + steps).Select(t => SliceToken(tokens, t)).ToArray();

await using RetentionClient client = await StartClusterAsync();
foreach ((string label, RetentionState state) in new[] { ($"{ShortHistory:N0}", shortState), ($"{LongHistory:N0}", longState) })
{
    double direct = MeasureDirect(state, perToken, warmup);
    (double grain, double info) = await MeasureGrainAsync(client, state, perToken, warmup);
    Console.WriteLine(Invariant($"history {label,9} tokens: DecodeState.Step median {direct,7:F3} ms | session grain StepAsync median {grain,7:F3} ms | GetInfoAsync round trip median {info,7:F3} ms"));
}

return 0;

static double MeasureDirect(RetentionState state, Tensor?[][] perToken, int warmup)
{
    var decode = new DecodeState(1, Heads, Heads, Dim, Dim, Degree, switchOverSeqLen: DecodeSessionSpec.DefaultSwitchOverSeqLen, initialState: state);
    var times = new List<double>();
    for (int t = 0; t < perToken.Length; t++)
    {
        long start = Stopwatch.GetTimestamp();
        decode.Step(perToken[t][0]!, perToken[t][1]!, perToken[t][2]!, perToken[t][3]);
        if (t >= warmup)
        {
            times.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }
    }

    return Median(times);
}

// Returns the median step latency and, for comparison, the median of a grain call that does no work.
static async Task<(double Step, double Info)> MeasureGrainAsync(RetentionClient client, RetentionState state, Tensor?[][] perToken, int warmup)
{
    DecodeSession session = await client.StartSessionFromStateAsync(state, new DecodeSessionSpec { QueryHeads = Heads });
    var steps = new List<double>();
    var infos = new List<double>();
    for (int t = 0; t < perToken.Length; t++)
    {
        long start = Stopwatch.GetTimestamp();
        await session.StepAsync(perToken[t][0]!, perToken[t][1]!, perToken[t][2]!, perToken[t][3]);
        double step = Stopwatch.GetElapsedTime(start).TotalMilliseconds;

        start = Stopwatch.GetTimestamp();
        await session.GetInfoAsync();
        double info = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        if (t >= warmup)
        {
            steps.Add(step);
            infos.Add(info);
        }
    }

    await session.DropAsync();
    return (Median(steps), Median(infos));
}

static async Task<RetentionClient> StartClusterAsync()
{
    int siloPort = FreePort(), gatewayPort = FreePort();
    IHost host = Host.CreateDefaultBuilder()
        .ConfigureLogging(logging => logging.ClearProviders())
        .UseOrleans(silo =>
        {
            silo.UseLocalhostClustering(siloPort, gatewayPort);
            silo.AddPowerRetention();
            silo.AddDecodeSessionStorage(redisConnectionString: null);
        })
        .Build();
    await host.StartAsync();
    return RetentionClient.FromOrleansClient(host.Services.GetRequiredService<IClusterClient>(), $"embedded silo on 127.0.0.1:{siloPort}");
}

static Tensor?[] SliceToken(RetentionInputs inputs, int t) =>
[
    Slice(inputs.Q, t),
    Slice(inputs.K, t),
    Slice(inputs.V, t),
    null,
];

static Tensor Slice(Tensor tensor, int t)
{
    int[] shape = tensor.Shape.ToArray();
    long row = tensor.ElementCount / shape[1];
    shape[1] = 1;
    var values = new float[row];
    tensor.Storage.Read(t * row, values);
    return Tensor.FromArray(values, shape);
}

static double Median(List<double> values)
{
    values.Sort();
    int middle = values.Count / 2;
    return values.Count % 2 == 1 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
}

static int ReadOption(string[] args, string name, int defaultValue)
{
    int at = Array.IndexOf(args, name);
    return at >= 0 && at + 1 < args.Length ? int.Parse(args[at + 1], CultureInfo.InvariantCulture) : defaultValue;
}

static int FreePort()
{
    using var listener = new TcpListener(IPAddress.Loopback, 0);
    listener.Start();
    return ((IPEndPoint)listener.LocalEndpoint).Port;
}

static string RuntimeDescription() => System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription;

static string Invariant(FormattableString text) => FormattableString.Invariant(text);
