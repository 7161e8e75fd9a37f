using PowerRetention.Cli.Tests.Support;
using PowerRetention.Kernels;

namespace PowerRetention.Cli.Tests;

public sealed class BenchCommandTests
{
    [Fact]
    public void Bench_TinySizes_PrintsOneRowEach()
    {
        CliResult result = CliRunner.Succeed("bench", "--tokens", "48,96", "--heads", "2", "--q-heads", "4", "--dim", "8", "--chunk-size", "32", "--repeat", "2", "--threads", "1");

        string[] lines = result.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        string header = Assert.Single(lines, l => l.StartsWith("tokens", StringComparison.Ordinal));
        Assert.Contains("best ms", header);
        Assert.Contains("median ms", header);
        Assert.Contains("token-heads/s", header);
        Assert.Contains("GFLOP/s", header);

        string[] rows = lines.Where(l => char.IsAsciiDigit(l[0])).ToArray();
        Assert.Equal(2, rows.Length);
        Assert.StartsWith("48 ", rows[0]);
        Assert.StartsWith("96 ", rows[1]);
        foreach (string row in rows)
        {
            string[] cells = row.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal("32", cells[1]);
            Assert.True(double.Parse(cells[^1], System.Globalization.CultureInfo.InvariantCulture) > 0, row);
        }
    }

    [Fact]
    public void Bench_ChunkZero_UsesWholeSequence()
    {
        CliResult result = CliRunner.Succeed("bench", "--tokens", "40", "--heads", "1", "--dim", "4", "--deg", "4", "--chunk-size", "0", "--repeat", "1", "--dtype", "f16", "--gating");

        string row = result.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Single(l => l.StartsWith("40 ", StringComparison.Ordinal));
        Assert.Equal("40", row.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
        Assert.Contains("p=4", result.Output);
        Assert.Contains("f16", result.Output);
    }

    [Fact]
    public void Bench_ChunkAuto_UsesLibraryChoice()
    {
        CliResult result = CliRunner.Succeed("bench", "--tokens", "48,600", "--heads", "1", "--dim", "8", "--chunk-size", "auto", "--repeat", "1");

        string[] rows = result.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Where(l => char.IsAsciiDigit(l[0])).ToArray();
        Assert.Equal(2, rows.Length);
        Assert.Equal("48", rows[0].Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
        Assert.Equal(ChunkSizeSelector.FallbackChunkSize.ToString(System.Globalization.CultureInfo.InvariantCulture), rows[1].Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
    }

    [Fact]
    public void Bench_BadChunkSize_ExitsTwo()
    {
        CliResult result = CliRunner.Run("bench", "--tokens", "16", "--chunk-size", "fast");

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("invalid value 'fast' for --chunk-size: expected a number of tokens or auto", result.Error);
    }

    [Fact]
    public void Bench_BadTokenList_ExitsTwo()
    {
        CliResult result = CliRunner.Run("bench", "--tokens", "16,x");

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("invalid value 'x' for --tokens", result.Error);
    }

    [Fact]
    public void FlopModel_MatchesFormula()
    {
        // With d = e = 64 and p = 2, D = 2080. Each token-head costs (d + e)(c + 1) + 4De + 3D with c = 1024.
        double perTokenHead = (128.0 * 1025) + (4.0 * 2080 * 64) + (3.0 * 2080);
        Assert.Equal(1024 * perTokenHead, FlopModel.Count(1, 1024, 1, 1, 64, 64, 2, 1024));

        // The chunk is capped at t, and chunk size 0 uses t.
        Assert.Equal(100, FlopModel.EffectiveChunkSize(1024, 100));
        Assert.Equal(100, FlopModel.EffectiveChunkSize(0, 100));
        Assert.Equal(64, FlopModel.EffectiveChunkSize(64, 100));

        // With hq = 2h, the state update is counted once per key/value head.
        double query = (128.0 * 65) + (2.0 * 2080 * 64) + (2.0 * 2080);
        double update = (2.0 * 2080 * 64) + 2080;
        Assert.Equal(3 * 100 * ((4 * query) + (2 * update)), FlopModel.Count(3, 100, 2, 4, 64, 64, 2, 64));
    }
}
