using System.Globalization;
using System.Net;
using System.Net.Sockets;
using PowerRetention.Kernels;
using PowerRetention.Kernels.IO;

namespace PowerRetention.EndToEnd.Tests;

/// <summary>
/// Two <c>powerret-silo</c> processes form a cluster on loopback and a <c>powerret run --cluster</c> process runs a job
/// on it. The output and final state must match <see cref="Retention.Compute"/> in this process.
/// </summary>
public sealed class TwoSiloClusterTests : IDisposable
{
    // Generous, because a silo starts in about 2 s on an idle two-core machine but far slower when builds or tests share it.
    private static readonly TimeSpan s_startTimeout = TimeSpan.FromSeconds(90);
    private static readonly TimeSpan s_runTimeout = TimeSpan.FromSeconds(180);
    private static readonly TimeSpan s_stopTimeout = TimeSpan.FromSeconds(60);

    private readonly string _folder = Path.Combine(Path.GetTempPath(), "powerret-e2e-" + Guid.NewGuid().ToString("N"));
    private readonly List<ChildProcess> _processes = [];

    public TwoSiloClusterTests()
    {
        Directory.CreateDirectory(_folder);
    }

    public void Dispose()
    {
        foreach (ChildProcess process in _processes)
        {
            process.Dispose();
        }

        try
        {
            Directory.Delete(_folder, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [Fact]
    public async Task RunOnTwoSilos_MatchesLibrary()
    {
        const int Time = 2048, Heads = 2, QueryHeads = 4, Dim = 16, ChunkSize = 64, SegmentTokens = 256;
        RetentionInputs inputs = SyntheticInputs.Create(1, Time, Heads, Dim, QueryHeads, gating: true, seed: 7);
        string[] inputArguments = WriteInputs(inputs);
        var options = new RetentionOptions { Degree = 2, ChunkSize = ChunkSize, ReturnFinalState = true };
        RetentionResult expected = Retention.Compute(inputs.Q, inputs.K, inputs.V, inputs.LogG, options: options);

        int[] ports = FreePorts(4);
        int silo1 = ports[0], gateway1 = ports[1], silo2 = ports[2], gateway2 = ports[3];
        ChildProcess first = StartSilo("silo 1", silo1, gateway1, primary: null);
        string firstReady = await first.WaitForLineAsync("Silo ready:", s_startTimeout);
        Assert.Equal($"Silo ready: silo 127.0.0.1:{silo1}, gateway 127.0.0.1:{gateway1}, cluster powerret", firstReady);
        ChildProcess second = StartSilo("silo 2", silo2, gateway2, primary: silo1);
        string secondReady = await second.WaitForLineAsync("Silo ready:", s_startTimeout);
        Assert.Equal($"Silo ready: silo 127.0.0.1:{silo2}, gateway 127.0.0.1:{gateway2}, cluster powerret", secondReady);

        string output = Path.Combine(_folder, "y.npy");
        string finalState = Path.Combine(_folder, "state.bin");
        ChildProcess run = Start("powerret run", "powerret.dll",
        [
            "run", .. inputArguments,
            "--chunk-size", ChunkSize.ToString(CultureInfo.InvariantCulture),
            "--segment-tokens", SegmentTokens.ToString(CultureInfo.InvariantCulture),
            "--cluster", $"127.0.0.1:{gateway1},127.0.0.1:{gateway2}",
            "--final-state", finalState,
            "--out", output,
        ]);
        int runExit = await run.WaitForExitAsync(s_runTimeout);

        string transcripts = $"{run.Transcript}\n--- silo 1 ---\n{first.Transcript}\n--- silo 2 ---\n{second.Transcript}";
        Assert.True(runExit == 0, $"powerret run exited with code {runExit}.\n{transcripts}");
        Assert.Contains($"8 segments of {SegmentTokens} tokens", run.Transcript);
        Assert.Contains("over 2 silos", first.Transcript + second.Transcript);

        float[] actual = ReadAll(output);
        double outputError = RelativeError(actual, expected.Output.ToSingleArray());
        Assert.True(outputError < 1e-4, $"relative error of Y {outputError:E3} is not below 1e-4.\n{transcripts}");
        RetentionState state = StateFile.Read(finalState);
        double stateError = RelativeError(Flatten(state), Flatten(expected.FinalState!));
        Assert.True(stateError < 1e-4, $"relative error of the final state {stateError:E3} is not below 1e-4.\n{transcripts}");

        // The second silo stops first: the first one is the primary that the second reports its departure to.
        second.Terminate();
        Assert.Equal(0, await second.WaitForExitAsync(s_stopTimeout));
        Assert.Contains("stopped", second.Transcript);
        first.Terminate();
        Assert.Equal(0, await first.WaitForExitAsync(s_stopTimeout));
        Assert.Contains("stopped", first.Transcript);
    }

    private ChildProcess StartSilo(string name, int siloPort, int gatewayPort, int? primary)
    {
        var arguments = new List<string>
        {
            "--silo-port", siloPort.ToString(CultureInfo.InvariantCulture),
            "--gateway-port", gatewayPort.ToString(CultureInfo.InvariantCulture),
            "--threads", "1",
        };
        if (primary is int primaryPort)
        {
            arguments.AddRange(["--primary", $"127.0.0.1:{primaryPort}"]);
        }

        return Start(name, "powerret-silo.dll", arguments);
    }

    private ChildProcess Start(string name, string programDll, IEnumerable<string> arguments)
    {
        ChildProcess process = ChildProcess.Start(name, programDll, arguments);
        _processes.Add(process);
        return process;
    }

    private string[] WriteInputs(RetentionInputs inputs)
    {
        string q = Path.Combine(_folder, "q.npy"), k = Path.Combine(_folder, "k.npy"), v = Path.Combine(_folder, "v.npy"), logG = Path.Combine(_folder, "log_g.npy");
        NpyFile.Write(q, inputs.Q);
        NpyFile.Write(k, inputs.K);
        NpyFile.Write(v, inputs.V);
        NpyFile.Write(logG, inputs.LogG!);
        return ["--q", q, "--k", k, "--v", v, "--log-g", logG];
    }

    // Keeps every listener open until all ports are chosen, so that the ports differ.
    private static int[] FreePorts(int count)
    {
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
        try
        {
            listeners.ForEach(listener => listener.Start());
            return listeners.Select(listener => ((IPEndPoint)listener.LocalEndpoint).Port).ToArray();
        }
        finally
        {
            listeners.ForEach(listener => listener.Stop());
        }
    }

    private static float[] ReadAll(string npyPath)
    {
        using Tensor tensor = NpyFile.Read(npyPath);
        return tensor.ToSingleArray();
    }

    private static float[] Flatten(RetentionState state) =>
        state.HeadStates.SelectMany(head => head.Values.Concat(head.Normalizer)).ToArray();

    private static double RelativeError(float[] actual, float[] expected)
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
