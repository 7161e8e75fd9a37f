using PowerRetention.Cli.Tests.Support;

namespace PowerRetention.Cli.Tests;

public sealed class DeviceOptionTests : IDisposable
{
    private static readonly string s_case = Path.Combine(AppContext.BaseDirectory, "TestData", "vectors", "basic_deg2");
    private readonly string _output = Path.Combine(Path.GetTempPath(), $"powerret-device-{Guid.NewGuid():N}.npy");

    public void Dispose() => File.Delete(_output);

    private string[] Run(string device, bool local = true) =>
    [
        "run", .. local ? new[] { "--local" } : [], "--device", device,
        "--q", Path.Combine(s_case, "q.npy"), "--k", Path.Combine(s_case, "k.npy"), "--v", Path.Combine(s_case, "v.npy"),
        "--chunk-size", "64", "--out", _output,
    ];

    [Fact]
    public void AutoDevice_FallsBackToCpu()
    {
        CliResult result = CliRunner.Run(Run("auto"));

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("device:  cpu", result.Error, StringComparison.Ordinal);
        Assert.True(File.Exists(_output), $"{_output} was not written.");
    }

    [Fact]
    public void UnknownDevice_ExitsTwo()
    {
        CliResult result = CliRunner.Run(Run("tpu"));

        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Contains("invalid value 'tpu' for --device", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void DeviceOnCluster_ExitsTwo()
    {
        CliResult result = CliRunner.Run(Run("cpu", local: false));

        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Contains("--device applies to --local runs", result.Error, StringComparison.Ordinal);
    }
}
