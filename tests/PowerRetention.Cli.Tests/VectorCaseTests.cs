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

    public static TheoryData<string, bool> Cases()
    {
        var data = new TheoryData<string, bool>();
        foreach (string folder in Directory.GetDirectories(s_vectorFolder).Order(StringComparer.Ordinal))
        {
            data.Add(Path.GetFileName(folder), false);
            data.Add(Path.GetFileName(folder), true);
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
    public void Run_MatchesReference(string caseName, bool quadratic)
    {
        string folder = Path.Combine(s_vectorFolder, caseName);
        using JsonDocument description = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "case.json")));
        JsonElement root = description.RootElement;
        int degree = root.GetProperty("deg").GetInt32();
        int chunkSize = root.GetProperty("chunk_size").GetInt32();
        JsonElement scale = root.GetProperty("scale");

        using var output = new TestFolder();
        string y = output.File("y.npy");
        var args = new List<string>
        {
            "run",
            "--q", Path.Combine(folder, "q.npy"),
            "--k", Path.Combine(folder, "k.npy"),
            "--v", Path.Combine(folder, "v.npy"),
            "--deg", degree.ToString(CultureInfo.InvariantCulture),
            "--chunk-size", quadratic ? "0" : chunkSize.ToString(CultureInfo.InvariantCulture),
            "--out", y,
        };
        string logG = Path.Combine(folder, "log_g.npy");
        if (File.Exists(logG))
        {
            args.AddRange(["--log-g", logG]);
        }

        if (scale.ValueKind != JsonValueKind.Null)
        {
            args.AddRange(["--scale", scale.GetDouble().ToString("R", CultureInfo.InvariantCulture)]);
        }

        CliRunner.Succeed([.. args]);

        double error = TestTensorFiles.RelativeError(TestTensorFiles.ReadNpy(y), TestTensorFiles.ReadNpy(Path.Combine(folder, "y.npy")));
        Assert.True(error < 1e-4, $"{caseName} (chunk size {(quadratic ? 0 : chunkSize)}): relative error {error:E3} is not below 1e-4.");
    }
}
