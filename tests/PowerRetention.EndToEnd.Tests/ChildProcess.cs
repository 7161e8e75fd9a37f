using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace PowerRetention.EndToEnd.Tests;

/// <summary>
/// A .NET program of this repository started as a separate process with <c>dotnet PROGRAM.dll</c>, its output and
/// error streams captured line by line. Disposing kills it if it is still running.
/// </summary>
internal sealed partial class ChildProcess : IDisposable
{
    private const int SigTerm = 15;

    private readonly Process _process;
    private readonly StringBuilder _transcript = new();
    private readonly Lock _gate = new();
    private readonly List<(string Prefix, TaskCompletionSource<string> Line)> _waiters = [];

    private ChildProcess(string name, Process process)
    {
        Name = name;
        _process = process;
    }

    /// <summary>A name for messages, such as "silo 1".</summary>
    public string Name { get; }

    /// <summary>Both streams as captured so far, each line marked "out" or "err".</summary>
    public string Transcript
    {
        get
        {
            lock (_gate)
            {
                return _transcript.ToString();
            }
        }
    }

    /// <summary>The exit code; the process must have exited.</summary>
    public int ExitCode => _process.ExitCode;

    /// <summary>Starts <c>dotnet</c> on a program next to this test assembly, such as powerret-silo.dll.</summary>
    public static ChildProcess Start(string name, string programDll, IEnumerable<string> arguments)
    {
        string program = Path.Combine(AppContext.BaseDirectory, programDll);
        Assert.True(File.Exists(program), $"{program} is missing; the test project references the project that builds it.");

        // dotnet test sets DOTNET_HOST_PATH to the dotnet executable that runs the tests.
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(program);
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        var process = new Process { StartInfo = start };
        var child = new ChildProcess(name, process);
        process.OutputDataReceived += (_, e) => child.Record("out", e.Data);
        process.ErrorDataReceived += (_, e) => child.Record("err", e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    /// <summary>Returns the first output line that starts with <paramref name="prefix"/>, waiting up to <paramref name="timeout"/>.</summary>
    public async Task<string> WaitForLineAsync(string prefix, TimeSpan timeout)
    {
        TaskCompletionSource<string> line = new(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            string? seen = _transcript.ToString().Split('\n').Select(l => l.TrimEnd('\r')).FirstOrDefault(l => l.StartsWith("out: " + prefix, StringComparison.Ordinal));
            if (seen is not null)
            {
                return seen["out: ".Length..];
            }

            _waiters.Add((prefix, line));
        }

        Task exited = _process.WaitForExitAsync();
        Task finished = await Task.WhenAny(line.Task, exited, Task.Delay(timeout)).ConfigureAwait(false);
        if (finished == line.Task)
        {
            return await line.Task.ConfigureAwait(false);
        }

        string reason = finished == exited ? $"it exited with code {_process.ExitCode}" : $"it printed none within {timeout.TotalSeconds:0} s";
        Assert.Fail($"Expected {Name} to print a line starting with '{prefix}', but {reason}. Its output:\n{Transcript}");
        return string.Empty;
    }

    /// <summary>Waits up to <paramref name="timeout"/> for the process to exit and returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cancellation = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cancellation.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"Expected {Name} to exit within {timeout.TotalSeconds:0} s, but it is still running. Its output:\n{Transcript}");
        }

        return _process.ExitCode;
    }

    /// <summary>Sends SIGTERM, the signal of a graceful stop, to the process.</summary>
    public void Terminate()
    {
        if (OperatingSystem.IsWindows())
        {
            // NOTE: Windows has no SIGTERM; killing there skips the graceful stop this method is meant to test.
            _process.Kill();
            return;
        }

        int result = SendSignal(_process.Id, SigTerm);
        Assert.True(result == 0, $"kill({_process.Id}, SIGTERM) for {Name} failed with errno {Marshal.GetLastPInvokeError()}.");
    }

    /// <summary>Kills the process if it is still running.</summary>
    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException)
        {
            // The process exited between the check and the kill.
        }

        _process.Dispose();
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SendSignal(int processId, int signal);

    private void Record(string stream, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_gate)
        {
            _transcript.Append(stream).Append(": ").Append(line).Append('\n');
            if (stream != "out")
            {
                return;
            }

            for (int i = _waiters.Count - 1; i >= 0; i--)
            {
                if (line.StartsWith(_waiters[i].Prefix, StringComparison.Ordinal))
                {
                    _waiters[i].Line.TrySetResult(line);
                    _waiters.RemoveAt(i);
                }
            }
        }
    }
}
