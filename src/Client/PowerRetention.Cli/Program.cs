using System.Runtime.InteropServices;
using PowerRetention.Cli;

// Ctrl+C and SIGTERM cancel the running command, which then deletes its partial output and exits with
// code 1. A second Ctrl+C ends the process at once and can leave a temporary .partial file behind.
using var cancellation = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    if (!cancellation.IsCancellationRequested)
    {
        e.Cancel = true;
        cancellation.Cancel();
    }
};
using PosixSignalRegistration terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
{
    context.Cancel = true;
    cancellation.Cancel();
});

var settings = new CliSettings { Progress = Console.IsErrorRedirected ? ProgressStyle.Lines : ProgressStyle.Bar };
return await CliApp.RunAsync(args, Console.Out, Console.Error, settings, cancellation.Token).ConfigureAwait(false);
