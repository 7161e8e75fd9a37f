using System.Net;
using System.Net.Sockets;
using PowerRetention.Cli.Tests.Support;
using PowerRetention.Client;
using PowerRetention.Silo;

namespace PowerRetention.Cli.Tests;

/// <summary>The cluster options of <c>powerret run</c> and the <c>silo</c> and <c>demo</c> commands.</summary>
public sealed class ClusterCommandTests : IDisposable
{
    private readonly TestFolder _folder = new();

    public ClusterCommandTests()
    {
        CliRunner.Succeed("synth", "--tokens", "64", "--heads", "1", "--dim", "8", "--out", _folder.File("inputs"));
    }

    private string[] Inputs => ["--q", _folder.File("inputs/q.npy"), "--k", _folder.File("inputs/k.npy"), "--v", _folder.File("inputs/v.npy")];

    private string Y => _folder.File("y.npy");

    public void Dispose() => _folder.Dispose();

    [Fact]
    public void Run_UnreachableCluster_ExitsTwo()
    {
        string address = $"127.0.0.1:{UnusedPort()}";

        CliResult result = CliRunner.Run(["run", .. Inputs, "--out", Y, "--cluster", address, "--connect-timeout", "3"]);

        Assert.True(result.ExitCode == 2, result.ToString());
        string line = Assert.Single(result.ErrorLines);
        Assert.Contains("Could not connect to the cluster at " + address, line);
        Assert.False(File.Exists(Y), $"{Y} exists after a failed run.");
    }

    [Theory]
    [InlineData("--cluster 127.0.0.1:1 --local", "conflicts with --local")]
    [InlineData("--cluster 127.0.0.1:1 --backend embedded", "conflicts with --backend embedded")]
    [InlineData("--backend cluster", "--backend cluster needs the gateways")]
    [InlineData("--backend remote", "invalid value 'remote' for --backend")]
    [InlineData("--local --segment-tokens 64", "--segment-tokens applies to cluster runs")]
    [InlineData("--cluster 127.0.0.1:1 --threads 2", "the silos of --cluster set their own")]
    [InlineData("--cluster-id other", "--cluster-id applies only with --cluster")]
    [InlineData("--segment-tokens -1", "invalid value -1 for --segment-tokens")]
    [InlineData("--cluster 127.0.0.1:http", "is not host:port")]
    public void Run_InvalidClusterOptions_ExitTwo(string options, string expectedMessage)
    {
        CliResult result = CliRunner.Run(["run", .. Inputs, "--out", Y, .. options.Split(' ')]);

        Assert.True(result.ExitCode == 2, result.ToString());
        string line = Assert.Single(result.ErrorLines);
        Assert.Contains(expectedMessage, line);
        Assert.Equal(string.Empty, result.Output);
    }

    [Fact]
    public void Run_LocalAndBackendLocal_Agree()
    {
        CliResult local = CliRunner.Succeed(["run", .. Inputs, "--out", Y, "--local"]);
        CliResult backendLocal = CliRunner.Succeed(["run", .. Inputs, "--out", _folder.File("y2.npy"), "--backend", "local"]);

        Assert.Contains("(local, ", local.Output);
        Assert.Contains("(local, ", backendLocal.Output);
        Assert.DoesNotContain("cluster:", local.Output);
        Assert.Equal(TestTensorFiles.ReadNpy(Y), TestTensorFiles.ReadNpy(_folder.File("y2.npy")));
    }

    [Fact]
    public void Run_Cluster_PrintsSegmentsAndStateBytes()
    {
        CliResult result = CliRunner.Succeed(["run", .. Inputs, "--out", Y, "--chunk-size", "16", "--segment-tokens", "32"]);

        string line = Assert.Single(result.Output.Split('\n'), l => l.StartsWith("cluster:", StringComparison.Ordinal));
        Assert.Contains("2 segments of 32 tokens", line);
        Assert.Contains("of state moved between grains", line);
        Assert.Contains("0 segment restarts", line);
        Assert.Contains("(embedded cluster", result.Output);
    }

    [Theory]
    [InlineData("--silo-port abc", "invalid value 'abc' for --silo-port")]
    [InlineData("--gateway-port 70000", "invalid value '70000' for --gateway-port")]
    [InlineData("--silo-port 30000", "the silo port and the gateway port are both 30000")]
    [InlineData("--primary nowhere", "invalid value 'nowhere' for --primary")]
    [InlineData("--advertise host.example", "invalid value 'host.example' for --advertise")]
    [InlineData("--redis localhost:6379 --primary 127.0.0.1:11111", "--primary applies to localhost clustering only")]
    [InlineData("--threads -1", "invalid value '-1' for --threads")]
    [InlineData("--port 1", "unknown option '--port'")]
    public void Silo_InvalidOption_ExitsTwo(string options, string expectedMessage)
    {
        CliResult result = CliRunner.Run(["silo", .. options.Split(' ')]);

        Assert.True(result.ExitCode == 2, result.ToString());
        string line = Assert.Single(result.ErrorLines);
        Assert.Contains(expectedMessage, line);
        Assert.Contains("powerret silo --help", line);
        Assert.Equal(string.Empty, result.Output);
    }

    [Fact]
    public void Silo_DefaultIds_MatchClient()
    {
        Assert.Equal(RetentionClient.DefaultClusterId, SiloHostOptions.DefaultId);
        Assert.Equal(RetentionClient.DefaultServiceId, SiloHostOptions.DefaultId);
    }

    [Fact]
    public void Demo_SmallSequence_PassesCheck()
    {
        CliResult result = CliRunner.Run("demo", "--tokens", "4096", "--heads", "2", "--dim", "16");

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("chunk size 512 (chosen automatically)", result.Output);
        string check = Assert.Single(result.Output.Split('\n'), l => l.StartsWith("check:", StringComparison.Ordinal));
        Assert.Contains("32 rows (16 tokens x 2 heads)", check);
        Assert.EndsWith("passed", check.TrimEnd());
        Assert.Contains("tokens/s", result.Output);
        Assert.Contains("of state moved between grains", result.Output);
        Assert.Contains("peak resident set", result.Output);
        string folder = Path.GetDirectoryName(InputsPath(result))!;
        Assert.False(Directory.Exists(folder), $"the demo left its temporary folder {folder} behind.");
    }

    [Fact]
    public void Demo_Keep_LeavesInputsAndOutput()
    {
        CliResult result = CliRunner.Run("demo", "--tokens", "300", "--heads", "1", "--dim", "8", "--chunk-size", "64", "--segment-tokens", "128", "--keep");

        string folder = Path.GetDirectoryName(InputsPath(result))!;
        try
        {
            Assert.True(result.ExitCode == 0, result.ToString());
            Assert.Contains("3 segments of 128 tokens, the last of 44,", result.Output);
            Assert.Contains($"kept:    {folder}", result.Output);
            Assert.True(File.Exists(Path.Combine(folder, "inputs.safetensors")), result.ToString());
            (float[] values, _, int[] shape) = TestTensorFiles.ReadSafetensors(Path.Combine(folder, "y.safetensors"), "y");
            Assert.Equal([1, 300, 1, 8], shape);
            Assert.All(values, value => Assert.True(float.IsFinite(value)));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void Demo_OddDegree_ExitsTwo()
    {
        CliResult result = CliRunner.Run("demo", "--tokens", "64", "--deg", "3");

        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Contains("the degree must be even", Assert.Single(result.ErrorLines));
    }

    // The "inputs:" line names the inputs file in the temporary folder.
    private static string InputsPath(CliResult result)
    {
        string line = Assert.Single(result.Output.Split('\n'), l => l.StartsWith("inputs:", StringComparison.Ordinal));
        return line["inputs:".Length..line.IndexOf(": ", "inputs:".Length, StringComparison.Ordinal)].Trim();
    }

    private static int UnusedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
