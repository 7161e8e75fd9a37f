using PowerRetention.Cli.Tests.Support;
using PowerRetention.Kernels;

namespace PowerRetention.Cli.Tests;

/// <summary>
/// Every bad input exits with code 2 and one error line naming the problem, and leaves no file under
/// the output name (nor a temporary file beside it).
/// </summary>
public sealed class BadInputTests : IDisposable
{
    private const int Time = 24;
    private readonly TestFolder _folder = new();

    public BadInputTests()
    {
        // Valid f32 inputs with b = 1, t = 24, h = 2, d = e = 8. Each case replaces the file it breaks.
        RetentionInputs inputs = SyntheticInputs.Create(1, Time, 2, 8, gating: true, seed: 5);
        WriteNpy("q.npy", inputs.Q);
        WriteNpy("k.npy", inputs.K);
        WriteNpy("v.npy", inputs.V);
        WriteNpy("log_g.npy", inputs.LogG!);
    }

    private string Q => _folder.File("q.npy");

    private string K => _folder.File("k.npy");

    private string V => _folder.File("v.npy");

    private string LogG => _folder.File("log_g.npy");

    private string Y => _folder.File("y.npy");

    public void Dispose() => _folder.Dispose();

    [Fact]
    public void UnknownOption()
    {
        AssertRejected(["run", "--q", Q, "--k", K, "--v", V, "--out", Y, "--degree", "2"], "unknown option '--degree'");
    }

    [Fact]
    public void UnknownCommand()
    {
        AssertRejected(["compute", "--out", Y], "unknown command 'compute'");
    }

    [Fact]
    public void MissingOut()
    {
        AssertRejected(["run", "--q", Q, "--k", K, "--v", V], "missing required option --out");
    }

    [Fact]
    public void MissingInputs()
    {
        AssertRejected(["run", "--out", Y], "--q, --k and --v");
    }

    [Fact]
    public void MissingValue()
    {
        AssertRejected(["run", "--q", Q, "--k", K, "--v", V, "--out"], "--out needs a value");
    }

    [Fact]
    public void NonNumericDegree()
    {
        AssertRejected(["run", "--q", Q, "--k", K, "--v", V, "--deg", "two", "--out", Y], "invalid value 'two' for --deg");
    }

    [Fact]
    public void OddDegree()
    {
        AssertRejected(["run", "--q", Q, "--k", K, "--v", V, "--deg", "3", "--out", Y], "the degree must be even");
    }

    [Fact]
    public void NegativeChunkSize()
    {
        AssertRejected(["run", "--q", Q, "--k", K, "--v", V, "--chunk-size", "-1", "--out", Y], "--chunk-size");
    }

    [Fact]
    public void UnsupportedOutputExtension()
    {
        AssertRejected(["run", "--q", Q, "--k", K, "--v", V, "--out", _folder.File("y.bin")], "must end in .npy or .safetensors");
        Assert.False(File.Exists(_folder.File("y.bin")));
    }

    [Fact]
    public void QueryHeadsNotMultipleOfHeads()
    {
        RetentionInputs mismatched = SyntheticInputs.Create(1, Time, 3, 8, seed: 6);
        WriteNpy("q3.npy", mismatched.Q);
        AssertRejected(["run", "--q", _folder.File("q3.npy"), "--k", K, "--v", V, "--out", Y], "must be a multiple of key/value heads h=2");
    }

    [Fact]
    public void NaNInQ()
    {
        float[] values = ReadAll(Q);
        values[37] = float.NaN;
        TestTensorFiles.WriteNpy(Q, values, 1, Time, 2, 8);
        AssertRejected(["run", "--q", Q, "--k", K, "--v", V, "--out", Y], "Q[0, 2, 0, 5] = NaN is not finite");
    }

    [Fact]
    public void PositiveLogGate()
    {
        float[] values = ReadAll(LogG);
        values[9] = 0.5f;
        TestTensorFiles.WriteNpy(LogG, values, 1, Time, 2);
        AssertRejected(["run", "--q", Q, "--k", K, "--v", V, "--log-g", LogG, "--out", Y], "log_G[0, 4, 1] = 0.5 is positive");
    }

    [Fact]
    public void MissingFile()
    {
        string missing = _folder.File("missing.npy");
        AssertRejected(["run", "--q", Q, "--k", K, "--v", missing, "--out", Y], $"{missing}: file not found");
    }

    [Fact]
    public void TruncatedNpy()
    {
        TestTensorFiles.WriteRawNpy(V, "<f4", false, [1, Time, 2, 8], new byte[100]);
        AssertRejected(["run", "--q", Q, "--k", K, "--v", V, "--out", Y], "truncated");
    }

    [Fact]
    public void FortranOrderNpy()
    {
        TestTensorFiles.WriteRawNpy(K, "<f4", true, [1, Time, 2, 8], new byte[Time * 2 * 8 * 4]);
        AssertRejected(["run", "--q", Q, "--k", K, "--v", V, "--out", Y], "Fortran order");
    }

    [Fact]
    public void Float64Npy()
    {
        TestTensorFiles.WriteRawNpy(Q, "<f8", false, [1, Time, 2, 8], new byte[Time * 2 * 8 * 8]);
        AssertRejected(["run", "--q", Q, "--k", K, "--v", V, "--out", Y], "unsupported dtype '<f8'");
    }

    [Fact]
    public void Bf16ToNpy()
    {
        string inputs = _folder.File("bf16");
        CliRunner.Succeed("synth", "--tokens", "16", "--heads", "1", "--dim", "8", "--dtype", "bf16", "--out", inputs);
        AssertRejected(["run", "--input", Path.Combine(inputs, "inputs.safetensors"), "--out", Y], ".npy has no bfloat16 dtype");
    }

    [Fact]
    public void InputAndSeparateFiles()
    {
        AssertRejected(["run", "--input", _folder.File("x.safetensors"), "--q", Q, "--out", Y], "either --input or --q/--k/--v/--log-g");
    }

    [Fact]
    public void OutputIsAnInput()
    {
        float[] before = ReadAll(V);
        AssertRejected(["run", "--q", Q, "--k", K, "--v", V, "--out", V], "is both an input and an output", checkOutput: false);
        Assert.Equal(before, ReadAll(V));
    }

    [Fact]
    public void FinalStateIsOutput()
    {
        AssertRejected(["run", "--q", Q, "--k", K, "--v", V, "--final-state", Y, "--out", Y], "--out and --final-state both name");
    }

    [Fact]
    public void MismatchedInitialState()
    {
        // A state for d = 4 cannot continue inputs with d = 8.
        RetentionInputs small = SyntheticInputs.Create(1, Time, 2, 4, seed: 8);
        WriteNpy("q4.npy", small.Q);
        WriteNpy("k4.npy", small.K);
        WriteNpy("v4.npy", small.V);
        string state = _folder.File("state.bin");
        CliRunner.Succeed("run", "--q", _folder.File("q4.npy"), "--k", _folder.File("k4.npy"), "--v", _folder.File("v4.npy"), "--final-state", state, "--out", _folder.File("y4.npy"));

        AssertRejected(["run", "--q", Q, "--k", K, "--v", V, "--initial-state", state, "--out", Y], "Initial state has p=2, d=4");
    }

    [Fact]
    public void MissingInitialState()
    {
        string missing = _folder.File("missing-state.bin");
        AssertRejected(["run", "--q", Q, "--k", K, "--v", V, "--initial-state", missing, "--out", Y], "missing-state.bin");
    }

    [Fact]
    public void SynthQueryHeadsNotMultipleOfHeads()
    {
        string output = _folder.File("synth");
        AssertRejected(["synth", "--tokens", "8", "--heads", "2", "--q-heads", "3", "--dim", "4", "--out", output], "--q-heads 3 must be a multiple of --heads 2", checkOutput: false);
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void SynthUnknownDataType()
    {
        AssertRejected(["synth", "--tokens", "8", "--heads", "1", "--dim", "4", "--dtype", "f64", "--out", _folder.File("synth")], "invalid value 'f64' for --dtype", checkOutput: false);
    }

    private void AssertRejected(string[] args, string expectedMessage, bool checkOutput = true)
    {
        string[] before = _folder.ListFiles();
        CliResult result = CliRunner.Run(args);

        Assert.True(result.ExitCode == 2, result.ToString());
        string line = Assert.Single(result.ErrorLines);
        Assert.Contains(expectedMessage, line);
        Assert.DoesNotContain("   at ", result.Error);
        Assert.Equal(string.Empty, result.Output);
        if (checkOutput)
        {
            Assert.False(File.Exists(Y), $"{Y} exists after a failed run.");
        }

        Assert.Equal(before, _folder.ListFiles());
    }

    private void WriteNpy(string name, Tensor tensor) => Kernels.IO.NpyFile.Write(_folder.File(name), tensor);

    private static float[] ReadAll(string path) => TestTensorFiles.ReadNpy(path);
}
