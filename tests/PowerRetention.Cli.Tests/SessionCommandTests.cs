using PowerRetention.Cli.Tests.Support;

namespace PowerRetention.Cli.Tests;

public sealed class SessionCommandTests
{
    [Fact]
    public void Session_WithoutSubcommand_ExitsTwo()
    {
        CliResult result = CliRunner.Run("session");

        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Single(result.ErrorLines);
    }

    [Fact]
    public void Session_UnknownSubcommand_ExitsTwo()
    {
        CliResult result = CliRunner.Run("session", "rewind", "--cluster", "127.0.0.1:1");

        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Contains("rewind", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void SessionStart_UnreachableCluster_ExitsTwo()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        int port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();

        CliResult result = CliRunner.Run("session", "start", "--session", "s1", "--heads", "2", "--dim", "8", "--cluster", $"127.0.0.1:{port}", "--connect-timeout", "3");

        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Contains($"127.0.0.1:{port}", result.Error, StringComparison.Ordinal);
    }
}
