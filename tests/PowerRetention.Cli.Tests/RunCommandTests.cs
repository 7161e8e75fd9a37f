using PowerRetention.Cli.Tests.Support;
using PowerRetention.Kernels;
using PowerRetention.Kernels.IO;

namespace PowerRetention.Cli.Tests;

public sealed class RunCommandTests
{
    [Theory]
    [InlineData("f32")]
    [InlineData("f16")]
    public void SynthThenRun_Npy_MatchesLibrary(string dtype)
    {
        using var folder = new TestFolder();
        string inputs = folder.File("inputs");
        CliResult synth = CliRunner.Succeed("synth", "--tokens", "96", "--heads", "2", "--q-heads", "4", "--dim", "16", "--value-dim", "8", "--gating", "--dtype", dtype, "--out", inputs);
        Assert.Contains("q.npy", synth.Output);
        Assert.Equal(["inputs/k.npy", "inputs/log_g.npy", "inputs/q.npy", "inputs/v.npy"], folder.ListFiles());
        Assert.Equal(DataType.Float32, NpyFile.ReadHeader(Path.Combine(inputs, "log_g.npy")).DataType);

        string y = folder.File("y.npy");
        CliResult run = CliRunner.Succeed(
            "run",
            "--q", Path.Combine(inputs, "q.npy"),
            "--k", Path.Combine(inputs, "k.npy"),
            "--v", Path.Combine(inputs, "v.npy"),
            "--log-g", Path.Combine(inputs, "log_g.npy"),
            "--chunk-size", "32",
            "--out", y);
        Assert.Contains("token-heads/s", run.Output);

        (DataType dataType, int[] shape) = NpyFile.ReadHeader(y);
        Assert.Equal(DataTypeExtensions.Parse(dtype), dataType);
        Assert.Equal([1, 96, 4, 8], shape);

        RetentionInputs expectedInputs = SyntheticInputs.Create(1, 96, 2, 16, 4, 8, gating: true, seed: 42, DataTypeExtensions.Parse(dtype));
        RetentionResult expected = Retention.Compute(expectedInputs.Q, expectedInputs.K, expectedInputs.V, expectedInputs.LogG, options: new RetentionOptions { ChunkSize = 32 });
        Assert.Equal(expected.Output.ToSingleArray(), TestTensorFiles.ReadNpy(y));
    }

    [Theory]
    [InlineData("y.safetensors")]
    [InlineData("y.npy")]
    public void SynthThenRun_Bf16Safetensors(string outputName)
    {
        using var folder = new TestFolder();
        string inputs = folder.File("inputs");
        CliRunner.Succeed("synth", "--tokens", "80", "--heads", "2", "--dim", "16", "--gating", "--dtype", "bf16", "--out", inputs);
        Assert.Equal(["inputs/inputs.safetensors"], folder.ListFiles());
        string inputFile = Path.Combine(inputs, "inputs.safetensors");
        using (SafetensorsReader reader = SafetensorsFile.Open(inputFile))
        {
            Assert.Equal(["k", "log_g", "q", "v"], reader.TensorNames);
        }

        string y = folder.File(outputName);
        CliResult run = CliRunner.Run("run", "--input", inputFile, "--chunk-size", "32", "--out", y);
        if (outputName.EndsWith(".npy", StringComparison.Ordinal))
        {
            Assert.Equal(2, run.ExitCode);
            Assert.Contains(".safetensors", run.Error);
            Assert.False(File.Exists(y));
            return;
        }

        Assert.True(run.ExitCode == 0, run.ToString());
        (float[] values, DataType dataType, int[] shape) = TestTensorFiles.ReadSafetensors(y, "y");
        Assert.Equal(DataType.BFloat16, dataType);
        Assert.Equal([1, 80, 2, 16], shape);

        RetentionInputs expectedInputs = SyntheticInputs.Create(1, 80, 2, 16, gating: true, seed: 42, dataType: DataType.BFloat16);
        RetentionResult expected = Retention.Compute(expectedInputs.Q, expectedInputs.K, expectedInputs.V, expectedInputs.LogG, options: new RetentionOptions { ChunkSize = 32 });
        Assert.Equal(expected.Output.ToSingleArray(), values);
    }

    [Fact]
    public void Run_SafetensorsToNpy_F32()
    {
        using var folder = new TestFolder();
        RetentionInputs inputs = SyntheticInputs.Create(1, 40, 1, 8, gating: false, seed: 3);
        string inputFile = folder.File("x.safetensors");
        SafetensorsFile.Write(inputFile, new Dictionary<string, Tensor> { ["q"] = inputs.Q, ["k"] = inputs.K, ["v"] = inputs.V });

        string y = folder.File("y.npy");
        CliRunner.Succeed("run", "--input", inputFile, "--out", y);

        RetentionResult expected = Retention.Compute(inputs.Q, inputs.K, inputs.V);
        Assert.Equal(expected.Output.ToSingleArray(), TestTensorFiles.ReadNpy(y));
    }

    [Fact]
    public void ChainedRuns_EqualOneRun()
    {
        using var folder = new TestFolder();
        string inputs = folder.File("inputs");
        CliRunner.Succeed("synth", "--tokens", "160", "--heads", "2", "--q-heads", "4", "--dim", "16", "--batch", "2", "--gating", "--seed", "11", "--out", inputs);
        foreach (string name in new[] { "q", "k", "v", "log_g" })
        {
            string source = Path.Combine(inputs, name + ".npy");
            TestTensorFiles.SliceTime(source, folder.File(name + "1.npy"), 0, 100);
            TestTensorFiles.SliceTime(source, folder.File(name + "2.npy"), 100, 160);
        }

        string whole = folder.File("whole.npy");
        CliRunner.Succeed("run", "--q", Path.Combine(inputs, "q.npy"), "--k", Path.Combine(inputs, "k.npy"), "--v", Path.Combine(inputs, "v.npy"), "--log-g", Path.Combine(inputs, "log_g.npy"), "--chunk-size", "32", "--out", whole);

        string state = folder.File("state.bin");
        string first = folder.File("first.npy");
        CliResult firstRun = CliRunner.Succeed("run", "--q", folder.File("q1.npy"), "--k", folder.File("k1.npy"), "--v", folder.File("v1.npy"), "--log-g", folder.File("log_g1.npy"), "--chunk-size", "32", "--final-state", state, "--out", first);
        Assert.Contains("final state", firstRun.Output);
        Assert.True(File.Exists(state));

        string second = folder.File("second.npy");
        CliRunner.Succeed("run", "--q", folder.File("q2.npy"), "--k", folder.File("k2.npy"), "--v", folder.File("v2.npy"), "--log-g", folder.File("log_g2.npy"), "--chunk-size", "32", "--initial-state", state, "--out", second);

        float[] expected = TestTensorFiles.ReadNpy(whole);
        float[] firstValues = TestTensorFiles.ReadNpy(first);
        float[] secondValues = TestTensorFiles.ReadNpy(second);

        // Y is (b, t, hq, e) with b = 2, so each batch's rows are the first 100 tokens followed by the last 60.
        int rowsPerToken = 4 * 16;
        var joined = new float[expected.Length];
        for (int b = 0; b < 2; b++)
        {
            Array.Copy(firstValues, b * 100 * rowsPerToken, joined, b * 160 * rowsPerToken, 100 * rowsPerToken);
            Array.Copy(secondValues, b * 60 * rowsPerToken, joined, ((b * 160) + 100) * rowsPerToken, 60 * rowsPerToken);
        }

        double error = TestTensorFiles.RelativeError(joined, expected);
        Assert.True(error < 1e-5, $"relative error {error:E3} between two chained runs and one run is not below 1e-5.");
    }

    [Fact]
    public void Run_Cancelled_ExitsOneWithoutOutput()
    {
        using var folder = new TestFolder();
        string inputs = folder.File("inputs");
        CliRunner.Succeed("synth", "--tokens", "64", "--heads", "1", "--dim", "8", "--out", inputs);
        using var cancellation = new CancellationTokenSource();
        cancellation.Cancel();

        string y = folder.File("y.npy");
        CliResult result = CliRunner.Run(new CliSettings(), cancellation.Token, "run", "--q", Path.Combine(inputs, "q.npy"), "--k", Path.Combine(inputs, "k.npy"), "--v", Path.Combine(inputs, "v.npy"), "--out", y);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("cancelled", result.Error);
        Assert.Equal(["inputs/k.npy", "inputs/q.npy", "inputs/v.npy"], folder.ListFiles());
    }

    [Fact]
    public void Run_ProgressLines_WhenDelayIsZero()
    {
        using var folder = new TestFolder();
        string inputs = folder.File("inputs");
        CliRunner.Succeed("synth", "--tokens", "256", "--heads", "1", "--dim", "8", "--out", inputs);
        CliSettings settings = CliRunner.DefaultSettings with { Progress = ProgressStyle.Lines, ProgressDelay = TimeSpan.Zero };

        CliResult result = CliRunner.Run(settings, CancellationToken.None, "run", "--q", Path.Combine(inputs, "q.npy"), "--k", Path.Combine(inputs, "k.npy"), "--v", Path.Combine(inputs, "v.npy"), "--chunk-size", "16", "--out", folder.File("y.npy"));

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.NotEmpty(result.ErrorLines);
        Assert.All(result.ErrorLines, line => Assert.StartsWith("run: ", line));
        Assert.Contains(result.ErrorLines, line => line.Contains("100%", StringComparison.Ordinal));
        Assert.DoesNotContain('\r', result.Error);
    }

    [Fact]
    public void Run_Summary_NamesShapesAndOptions()
    {
        using var folder = new TestFolder();
        string inputs = folder.File("inputs");
        CliRunner.Succeed("synth", "--tokens", "50", "--heads", "1", "--dim", "8", "--out", inputs);

        CliResult result = CliRunner.Succeed("run", "--q", Path.Combine(inputs, "q.npy"), "--k", Path.Combine(inputs, "k.npy"), "--v", Path.Combine(inputs, "v.npy"), "--deg", "4", "--chunk-size", "0", "--out", folder.File("y.npy"));

        Assert.Contains("Q (1, 50, 1, 8)", result.Output);
        Assert.Contains("degree 4", result.Output);
        Assert.Contains("quadratic form", result.Output);
        Assert.Contains("50 tokens", result.Output);
        Assert.Contains("token-heads/s", result.Output);
        Assert.Contains("f32", result.Output);
    }
}
