using System.Diagnostics;
using System.Text.Json;
using PowerRetention.Kernels;
using PowerRetention.Kernels.Gpu;
using PowerRetention.Kernels.IO;

namespace PowerRetention.GpuCheck;

/// <summary>
/// Checks the CUDA backend on a GPU machine: the reference vector cases, then a benchmark of one long
/// bfloat16 sequence. With --cpu-accelerator it runs the same steps on ILGPU's CPU accelerator, a slow
/// dry run for machines without a GPU. Exit codes: 0 all passed, 1 a vector case failed, 2 no usable
/// CUDA device, 64 invalid arguments.
/// </summary>
public static class Program
{
    private const string Usage = "usage: GpuCheck [--vectors DIR] [--bench] [--time TOKENS] [--cpu-baseline] [--cpu-accelerator]";

    public static int Main(string[] args)
    {
        string? vectors = null;
        bool bench = false;
        bool cpuBaseline = false;
        bool cpuAccelerator = false;
        int time = 65_536;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--vectors" when i + 1 < args.Length:
                    vectors = args[++i];
                    break;
                case "--bench":
                    bench = true;
                    break;
                case "--cpu-baseline":
                    cpuBaseline = true;
                    break;
                case "--cpu-accelerator":
                    cpuAccelerator = true;
                    break;
                case "--time" when i + 1 < args.Length && int.TryParse(args[i + 1], out int tokens) && tokens > 0:
                    time = tokens;
                    i++;
                    break;
                default:
                    Console.Error.WriteLine($"gpu-check: invalid argument '{args[i]}'; {Usage}");
                    return 64;
            }
        }

        GpuBackend backend;
        try
        {
            backend = cpuAccelerator ? GpuBackend.CreateCpuAccelerator(tiledKernels: true) : GpuBackend.CreateCuda();
        }
        catch (InvalidOperationException error)
        {
            Console.Error.WriteLine($"gpu-check: {error.Message}");
            return 2;
        }

        using (backend)
        {
            Console.WriteLine($"device: {backend.DeviceName}, {backend.MemoryBytes / (1024 * 1024)} MiB, backend {backend.Name}, tiled products {backend.TiledKernels}");
            int failures = vectors is null ? 0 : RunVectorCases(backend, vectors);
            if (bench)
            {
                Benchmark.Run(backend, time, cpuBaseline);
            }

            return failures == 0 ? 0 : 1;
        }
    }

    // Runs every case folder under root on the backend and prints one PASS or FAIL line per case.
    private static int RunVectorCases(GpuBackend backend, string root)
    {
        int failures = 0;
        foreach (string folder in Directory.GetDirectories(root).Order(StringComparer.Ordinal))
        {
            string name = Path.GetFileName(folder);
            using JsonDocument json = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "case.json")));
            JsonElement scale = json.RootElement.GetProperty("scale");
            var options = new RetentionOptions
            {
                Degree = json.RootElement.GetProperty("deg").GetInt32(),
                Scale = scale.ValueKind == JsonValueKind.Null ? null : scale.GetSingle(),
                ChunkSize = json.RootElement.GetProperty("chunk_size").GetInt32(),
                Backend = backend,
            };
            string gatePath = Path.Combine(folder, "log_g.npy");
            using Tensor q = NpyFile.Read(Path.Combine(folder, "q.npy"));
            using Tensor k = NpyFile.Read(Path.Combine(folder, "k.npy"));
            using Tensor v = NpyFile.Read(Path.Combine(folder, "v.npy"));
            using Tensor? logG = File.Exists(gatePath) ? NpyFile.Read(gatePath) : null;
            using Tensor y = NpyFile.Read(Path.Combine(folder, "y.npy"));

            var stopwatch = Stopwatch.StartNew();
            RetentionResult result = Retention.Compute(q, k, v, logG, options: options);
            stopwatch.Stop();

            double error = RelativeError(result.Output.ToSingleArray(), y.ToSingleArray());
            bool passed = error < 1e-4;
            failures += passed ? 0 : 1;
            Console.WriteLine($"{(passed ? "PASS" : "FAIL")} {name}: relative error {error:0.00E+00} (bound 1E-04), {stopwatch.Elapsed.TotalMilliseconds:F0} ms");
        }

        Console.WriteLine($"vector cases: {failures} failed");
        return failures;
    }

    private static double RelativeError(float[] actual, float[] expected)
    {
        double difference = 0, norm = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            double delta = (double)actual[i] - expected[i];
            difference += delta * delta;
            norm += (double)expected[i] * expected[i];
        }

        return norm == 0 ? Math.Sqrt(difference) : Math.Sqrt(difference / norm);
    }
}
