using PowerRetention.Cli.Tests.Support;

namespace PowerRetention.Cli.Tests;

public sealed class HelpTests
{
    [Theory]
    [InlineData("--help")]
    [InlineData("-h")]
    [InlineData("help")]
    public void ProgramHelp_ListsCommands(string flag)
    {
        CliResult result = CliRunner.Succeed(flag);

        Assert.Contains("run", result.Output);
        Assert.Contains("synth", result.Output);
        Assert.Contains("bench", result.Output);
        Assert.Contains("demo", result.Output);
        Assert.Contains("silo", result.Output);
        Assert.Contains("Exit codes", result.Output);
    }

    [Theory]
    [InlineData("run", "--chunk-size TOKENS")]
    [InlineData("run", "--initial-state FILE")]
    [InlineData("synth", "--dtype TYPE")]
    [InlineData("bench", "--repeat N")]
    [InlineData("run", "--cluster HOST:PORT[,...]")]
    [InlineData("run", "--segment-tokens N")]
    [InlineData("demo", "--tokens N")]
    [InlineData("demo", "--segment-tokens N")]
    [InlineData("silo", "--primary HOST:PORT")]
    [InlineData("silo", "--redis CONNECTION")]
    public void CommandHelp_ListsOptions(string command, string option)
    {
        CliResult result = CliRunner.Succeed(command, "--help");

        Assert.StartsWith("Usage: powerret " + command, result.Output);
        Assert.Contains(option, result.Output);
        Assert.Contains("Default", result.Output);
    }

    [Fact]
    public void NoArguments_ExitsTwo()
    {
        CliResult result = CliRunner.Run();

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("Usage: powerret <command>", result.Error);
    }
}
