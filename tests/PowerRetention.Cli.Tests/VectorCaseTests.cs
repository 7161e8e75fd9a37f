using System.Globalization;
using System.Text.Json;
using PowerRetention.Cli.Tests.Support;

namespace PowerRetention.Cli.Tests;

/// <summary>
/// <c>powerret run</c> on the reference cases, whose y.npy comes from a float64 evaluation of the quadratic form.
/// </summary>
public sealed class VectorCaseTests
{
    private static readonly string s_vectorFolder = Path.Combine(AppContext.BaseDirectory, "TestData", "vectors");

    /// <summary>Every case, chunked and as the quadratic form, on the embedded cluster and with --local.</summary>
    public static TheoryData<string, bool, bool> Cases()
    {
        var data = new TheoryData<string, bool, bool>();
        foreach (string folder in Directory.GetDirectories(s_vectorFolder).Order(StringComparer.Ordinal))
        {
            foreach (bool local in new[] { false, true })
            {
                data.Add(Path.GetFileName(folder), false, local);
                data.Add(Path.GetFileName(folder), true, local);
            }
        }

        return data;
    }

    [Fact]
    public void VectorFolder_HasCases()
    {
        Assert.True(Directory.Exists(s_vectorFolder), $"{s_vectorFolder} is missing; the test project links the kernel tests' TestData.");
        Assert.NotEmpty(Directory.GetDirectories(s_vectorFolder));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Run_MatchesReference(string caseName, bool quadratic, bool local)
    {
        using var output = new TestFolder();
        VectorCase vectorCase = VectorCase.Load(caseName);
        List<string> args = vectorCase.RunArguments(output.File("y.npy"), quadratic ? 0 : vectorCase.ChunkSize);
        if (local)
        {
            args.Add("--local");
        }

        CliRunner.Succeed([.. args]);

        double error = vectorCase.RelativeErrorOf(output.File("y.npy"));
        string backend = local ? "--local" : "embedded cluster";
        Assert.True(error < 1e-4, $"{caseName} (chunk size {(quadratic ? 0 : vectorCase.ChunkSize)}, {backend}): relative error {error:E3} is not below 1e-4.");
    }

    [Theory]
    [InlineData("gated_gqa_padded_deg2", 1)]
    [InlineData("long_gated_deg2", 2)]
    [InlineData("gated_deg4", 1)]
    [InlineData("strong_decay", 1)]
    [InlineData("zero_rows", 1)]
    public void Run_OnSeveralSegments_MatchesReference(string caseName, int chunksPerSegment)
    {
        using var output = new TestFolder();
        VectorCase vectorCase = VectorCase.Load(caseName);
        int segmentTokens = vectorCase.ChunkSize * chunksPerSegment;
        List<string> args = vectorCase.RunArguments(output.File("y.npy"), vectorCase.ChunkSize);
        args.AddRange(["--segment-tokens", segmentTokens.ToString(CultureInfo.InvariantCulture)]);

        CliResult result = CliRunner.Succeed([.. args]);

        int segments = (vectorCase.Time + segmentTokens - 1) / segmentTokens;
        Assert.Contains($": {segments} segments of {segmentTokens} tokens", result.Output);
        double error = vectorCase.RelativeErrorOf(output.File("y.npy"));
        Assert.True(error < 1e-4, $"{caseName} in {segments} segments of {segmentTokens} tokens: relative error {error:E3} is not below 1e-4.");
    }

    [Fact]
    public void Run_OwnEmbeddedSilo_MatchesReference()
    {
        using var output = new TestFolder();
        VectorCase vectorCase = VectorCase.Load("gated_gqa_padded_deg2");
        List<string> args = vectorCase.RunArguments(output.File("y.npy"), vectorCase.ChunkSize);
        args.AddRange(["--segment-tokens", "128", "--threads", "1"]);

        // Settings without a cluster, so the command starts and stops a silo of its own.
        CliResult result = CliRunner.Run(new CliSettings(), CancellationToken.None, [.. args]);

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("(embedded cluster, 1 thread)", result.Output);
        Assert.Contains(": 3 segments of 128 tokens", result.Output);
        double error = vectorCase.RelativeErrorOf(output.File("y.npy"));
        Assert.True(error < 1e-4, $"relative error {error:E3} is not below 1e-4.");
    }

    /// <summary>One reference case: its folder and the parameters of case.json.</summary>
    private sealed record VectorCase(string Folder, int Degree, int ChunkSize, int Time, double? Scale)
    {
        public static VectorCase Load(string caseName)
        {
            string folder = Path.Combine(s_vectorFolder, caseName);
            using JsonDocument description = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "case.json")));
            JsonElement root = description.RootElement;
            JsonElement scale = root.GetProperty("scale");
            return new VectorCase(
                folder,
                root.GetProperty("deg").GetInt32(),
                root.GetProperty("chunk_size").GetInt32(),
                root.GetProperty("time").GetInt32(),
                scale.ValueKind == JsonValueKind.Null ? null : scale.GetDouble());
        }

        /// <summary>Returns the arguments of <c>powerret run</c> over the case's inputs, writing Y to <paramref name="outputPath"/>.</summary>
        public List<string> RunArguments(string outputPath, int chunkSize)
        {
            var args = new List<string>
            {
                "run",
                "--q", Path.Combine(Folder, "q.npy"),
                "--k", Path.Combine(Folder, "k.npy"),
                "--v", Path.Combine(Folder, "v.npy"),
                "--deg", Degree.ToString(CultureInfo.InvariantCulture),
                "--chunk-size", chunkSize.ToString(CultureInfo.InvariantCulture),
                "--out", outputPath,
            };
            string logG = Path.Combine(Folder, "log_g.npy");
            if (File.Exists(logG))
            {
                args.AddRange(["--log-g", logG]);
            }

            if (Scale is double scale)
            {
                args.AddRange(["--scale", scale.ToString("R", CultureInfo.InvariantCulture)]);
            }

            return args;
        }

        /// <summary>Returns the relative Frobenius error of an output file against the case's y.npy.</summary>
        public double RelativeErrorOf(string outputPath) =>
            TestTensorFiles.RelativeError(TestTensorFiles.ReadNpy(outputPath), TestTensorFiles.ReadNpy(Path.Combine(Folder, "y.npy")));
    }
}
