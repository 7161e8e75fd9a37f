using BenchmarkDotNet.Running;
using PowerRetention.Benchmarks;

// "sweep [folder] [--quick]" runs the sweeps and writes their report and plot; "phases [chunk]" prints quick
// per-phase figures beside the measured FMA peak; anything else goes to BenchmarkDotNet.
if (args.Length > 0 && args[0] == "sweep")
{
    string folder = args.Length > 1 && !args[1].StartsWith("--", StringComparison.Ordinal) ? args[1] : Path.Combine("docs", "benchmarks");
    Sweep.Run(folder, quick: args.Contains("--quick"));
    return;
}

if (args.Length > 0 && args[0] == "phases")
{
    Sweep.GemmShapes();
    Sweep.Phases(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 1024);
    return;
}

BenchmarkSwitcher.FromAssembly(typeof(PhaseBenchmarks).Assembly).Run(args);
