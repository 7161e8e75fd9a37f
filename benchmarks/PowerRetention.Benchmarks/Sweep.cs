using System.Diagnostics;
using System.Globalization;
using System.Text;
using PowerRetention.Kernels;

namespace PowerRetention.Benchmarks;

/// <summary>
/// Sweeps that BenchmarkDotNet would take hours over: chunk size with the time split by phase,
/// sequence length for the chunked path and the quadratic form, and their crossover per degree.
/// Writes a Markdown report and an SVG plot.
/// </summary>
public static class Sweep
{
    public static void Run(string outputFolder, bool quick)
    {
        Directory.CreateDirectory(outputFolder);
        var report = new StringBuilder();
        (double peakOne, double peakAll) = PeakFlops.Measure(Environment.ProcessorCount);
        report.AppendLine(CultureInfo.InvariantCulture, $"Machine: {Environment.ProcessorCount} cores, {CpuModel()}, .NET {Environment.Version}; {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC.");
        report.AppendLine(CultureInfo.InvariantCulture, $"Measured FMA peak (register-only loop at the runtime's vector width): {peakOne:F1} GFLOP/s on one core, {peakAll:F1} GFLOP/s on {Environment.ProcessorCount}.");
        report.AppendLine();

        foreach ((int degree, int dim) in new[] { (2, 64), (4, 32), (2, 128) })
        {
            ChunkSweep(report, degree, dim, quick);
        }

        List<(int Tokens, double Rate)> chunked = [], quadratic = [];
        LengthSweep(report, chunked, quadratic, quick);
        Crossover(report, quick);

        File.WriteAllText(Path.Combine(outputFolder, "sweep.md"), report.ToString());
        File.WriteAllText(Path.Combine(outputFolder, "throughput.svg"), SvgPlot.LogLog("Token-heads per second against sequence length (b=1, h=2, d=64, p=2, gated, 2 cores)", "tokens", "token-heads/s", [("chunked (chunk 1024)", chunked), ("quadratic form", quadratic)]));
        Console.WriteLine(report.ToString());
    }

    // One head on one thread through the chunk kernels, phase by phase, per token.
    private static void ChunkSweep(StringBuilder report, int degree, int dim, bool quick)
    {
        report.AppendLine(CultureInfo.InvariantCulture, $"### Chunk-size sweep, p={degree}, d=e={dim} (D={SymmetricPowerBasis.ExpandedDimOf(dim, degree)}), gated, one core");
        report.AppendLine();
        report.AppendLine("| chunk | attention µs/token | query µs/token | update µs/token | whole µs/token | token-heads/s per core | GFLOP/s per core |");
        report.AppendLine("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (int chunk in new[] { 64, 128, 256, 512, 1024, 2048, 4096 })
        {
            PhaseTimes t = MeasurePhases(degree, dim, chunk, Math.Max(quick ? 4096 : 8192, 2 * chunk));
            report.AppendLine(CultureInfo.InvariantCulture, $"| {chunk} | {t.Attention:F2} | {t.Query:F2} | {t.Update:F2} | {t.Whole:F2} | {1e6 / t.Whole:N0} | {t.WholeGflops:F1} |");
        }

        report.AppendLine();
    }

    /// <summary>
    /// Quick per-phase figures at one chunk size for the three shapes of the benchmarks, with each
    /// phase's GFLOP/s by <see cref="FlopModel"/> beside the machine's measured FMA peak.
    /// </summary>
    public static void Phases(int chunk)
    {
        (double peakOne, double peakAll) = PeakFlops.Measure(Environment.ProcessorCount);
        Console.WriteLine($"Machine: {Environment.ProcessorCount} cores, {CpuModel()}; FMA peak {peakOne:F1} GFLOP/s on one core, {peakAll:F1} on {Environment.ProcessorCount}.");
        Console.WriteLine($"One head on one thread, chunk {chunk}, gated; µs per token (GFLOP/s per core).");
        Console.WriteLine($"{"shape",-10} {"attention",-16} {"query",-16} {"update",-16} {"whole",-16} token-heads/s per core");
        foreach ((int degree, int dim) in new[] { (2, 64), (4, 32), (2, 128) })
        {
            PhaseTimes t = MeasurePhases(degree, dim, chunk, 8 * chunk, repeats: 9);
            static string Cell(double micros, double flops) => $"{micros:F2} ({flops / micros / 1e3:F1})";
            Console.WriteLine($"{$"p{degree}-d{dim}",-10} {Cell(t.Attention, FlopModel.Attention(dim, dim, chunk)),-16} {Cell(t.Query, FlopModel.Query(dim, dim, degree)),-16} {Cell(t.Update, FlopModel.Update(dim, dim, degree)),-16} {Cell(t.Whole, FlopModel.Total(dim, dim, degree, chunk)),-16} {1e6 / t.Whole:N0}");
        }
    }

    /// <summary>GFLOP/s of the GEMM alone, one thread, on the operand layouts of the state update and query at chunk 1024.</summary>
    public static unsafe void GemmShapes()
    {
        const int chunk = 1024, features = 64, values = 64, stride = 1040;
        const double flops = 2.0 * features * values * chunk;

        // Cache-line aligned operands, as in the chunk engine.
        var a = new AlignedBuffer(features * stride);
        var b = new AlignedBuffer(chunk * values);
        var c = new AlignedBuffer(chunk * values);
        for (int i = 0; i < a.Length; i++)
        {
            a[i] = i % 13 * 0.01f;
        }

        for (int i = 0; i < b.Length; i++)
        {
            b[i] = i % 7 * 0.01f;
        }

        // Update: C (features x e) += phiK (features x chunk, rows contiguous) * V (chunk x e).
        double update = flops / TimeBest(() => Kernels.Linear.Gemm.MultiplyAdd(features, values, chunk, a.Pointer, stride, 1, b.Pointer, values, c.Pointer, values), 200) / 1e9;

        // Query: C (chunk x e) += phiQ^T (read down columns of a features x chunk buffer) * S block (features x e).
        double query = flops / TimeBest(() => Kernels.Linear.Gemm.MultiplyAdd(chunk, values, features, a.Pointer, 1, stride, b.Pointer, values, c.Pointer, values), 200) / 1e9;
        Console.WriteLine($"GEMM alone, one thread: update layout {update:F1} GFLOP/s, query layout {query:F1} GFLOP/s.");
        GC.KeepAlive(a);
        GC.KeepAlive(b);
        GC.KeepAlive(c);
    }

    private readonly record struct PhaseTimes(double Attention, double Query, double Update, double Whole, double WholeGflops);

    // Best of several passes over the input, in processor time, as microseconds per token for each phase.
    private static PhaseTimes MeasurePhases(int degree, int dim, int chunk, int tokens, int repeats = 3)
    {
        RetentionInputs inputs = SyntheticInputs.Create(1, tokens, 1, dim, gating: true);
        RetentionProblem problem = RetentionProblem.Create(inputs.Q, inputs.K, inputs.V, inputs.LogG, null, new RetentionOptions { Degree = degree, ChunkSize = chunk });
        var engine = new ChunkEngine(problem);
        var state = new HeadState(problem.ExpandedDim, dim);
        engine.ProcessChunk(0, 0, 0, chunk, state, attention: false, queryState: false, updateState: true);

        double Measure(bool attention, bool query, bool update)
        {
            double best = double.MaxValue;
            for (int repeat = 0; repeat < repeats; repeat++)
            {
                TimeSpan start = Process.GetCurrentProcess().TotalProcessorTime;
                for (int position = 0; position + chunk <= tokens; position += chunk)
                {
                    engine.ProcessChunk(0, 0, position, chunk, state, attention, query, update);
                }

                best = Math.Min(best, (Process.GetCurrentProcess().TotalProcessorTime - start).TotalSeconds);
            }

            return best * 1e6 / (tokens / chunk * chunk);
        }

        double attentionTime = Measure(true, false, false);
        double queryTime = Measure(false, true, false);
        double updateTime = Measure(false, false, true);
        double wholeTime = Measure(true, true, true);
        return new PhaseTimes(attentionTime, queryTime, updateTime, wholeTime, FlopModel.Total(dim, dim, degree, chunk) / wholeTime / 1e3);
    }

    // Whole runs on every core: the chunked path from 16K to 1M tokens and the quadratic form up to 16K.
    private static void LengthSweep(StringBuilder report, List<(int, double)> chunked, List<(int, double)> quadratic, bool quick)
    {
        report.AppendLine("### Length sweep, b=1, h=2, d=64, p=2, gated, every core");
        report.AppendLine();
        report.AppendLine("| tokens | path | seconds | µs per token-head | token-heads/s |");
        report.AppendLine("| ---: | --- | ---: | ---: | ---: |");
        int[] chunkedLengths = quick ? [16384, 65536, 262144] : [16384, 65536, 262144, 1048576];
        int[] quadraticLengths = quick ? [1024, 2048, 4096] : [1024, 2048, 4096, 8192, 16384];
        foreach ((string path, int[] lengths, int chunk, List<(int, double)> series) in new[] { ("chunked", chunkedLengths, 1024, chunked), ("quadratic", quadraticLengths, 0, quadratic) })
        {
            foreach (int tokens in lengths)
            {
                RetentionInputs inputs = SyntheticInputs.Create(1, tokens, 2, 64, gating: true);
                double seconds = TimeBest(() => Retention.Compute(inputs.Q, inputs.K, inputs.V, inputs.LogG, options: new RetentionOptions { ChunkSize = chunk }), tokens <= 65536 ? 3 : 1);
                double rate = 2.0 * tokens / seconds;
                series.Add((tokens, rate));
                report.AppendLine(CultureInfo.InvariantCulture, $"| {tokens} | {path} | {seconds:F3} | {1e6 / rate:F2} | {rate:N0} |");
            }
        }

        report.AppendLine();
    }

    // The shortest length at which the chunked path beats the quadratic form.
    private static void Crossover(StringBuilder report, bool quick)
    {
        report.AppendLine("### Crossover: chunked (chunk 1024, or t when shorter) against the quadratic form, b=1, h=2, gated, every core");
        report.AppendLine();
        report.AppendLine("| degree | d | tokens | chunked s | quadratic s | faster |");
        report.AppendLine("| ---: | ---: | ---: | ---: | ---: | --- |");
        foreach ((int degree, int dim) in new[] { (2, 64), (4, 32) })
        {
            foreach (int tokens in quick ? new[] { 1024, 4096 } : new[] { 512, 1024, 2048, 4096, 8192, 16384 })
            {
                RetentionInputs inputs = SyntheticInputs.Create(1, tokens, 2, dim, gating: true);
                double chunkedSeconds = TimeBest(() => Retention.Compute(inputs.Q, inputs.K, inputs.V, inputs.LogG, options: new RetentionOptions { Degree = degree, ChunkSize = 1024 }), 3);
                double quadraticSeconds = TimeBest(() => Retention.Compute(inputs.Q, inputs.K, inputs.V, inputs.LogG, options: new RetentionOptions { Degree = degree, ChunkSize = 0 }), 3);
                report.AppendLine(CultureInfo.InvariantCulture, $"| {degree} | {dim} | {tokens} | {chunkedSeconds:F4} | {quadraticSeconds:F4} | {(chunkedSeconds < quadraticSeconds ? "chunked" : "quadratic")} |");
            }
        }

        report.AppendLine();
    }

    private static double TimeBest(Action action, int repeats)
    {
        action();
        double best = double.MaxValue;
        for (int i = 0; i < repeats; i++)
        {
            var timer = Stopwatch.StartNew();
            action();
            best = Math.Min(best, timer.Elapsed.TotalSeconds);
        }

        return best;
    }

    private static string CpuModel()
    {
        try
        {
            string? line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            return line is null ? "unknown CPU" : line[(line.IndexOf(':') + 1)..].Trim();
        }
        catch (IOException)
        {
            return "unknown CPU";
        }
    }
}
