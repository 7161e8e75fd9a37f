using System.Text.Json;
using PowerRetention.Kernels;
using PowerRetention.Kernels.IO;

namespace PowerRetention.KernelsGpu.Tests.Support;

/// <summary>A reference case from TestData/vectors: inputs, options and the float64 quadratic-form output.</summary>
internal sealed class VectorCase : IDisposable
{
    private VectorCase(Tensor q, Tensor k, Tensor v, Tensor? logG, Tensor y, RetentionOptions options)
    {
        Q = q;
        K = k;
        V = v;
        LogG = logG;
        Y = y;
        Options = options;
    }

    public Tensor Q { get; }

    public Tensor K { get; }

    public Tensor V { get; }

    public Tensor? LogG { get; }

    public Tensor Y { get; }

    /// <summary>Degree, scale and chunk size of the case.</summary>
    public RetentionOptions Options { get; }

    public static string Root => Path.Combine(AppContext.BaseDirectory, "TestData", "vectors");

    public static VectorCase Load(string name)
    {
        string folder = Path.Combine(Root, name);
        using JsonDocument json = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "case.json")));
        JsonElement root = json.RootElement;
        JsonElement scale = root.GetProperty("scale");
        var options = new RetentionOptions
        {
            Degree = root.GetProperty("deg").GetInt32(),
            Scale = scale.ValueKind == JsonValueKind.Null ? null : scale.GetSingle(),
            ChunkSize = root.GetProperty("chunk_size").GetInt32(),
        };
        string gatePath = Path.Combine(folder, "log_g.npy");
        return new VectorCase(
            NpyFile.Read(Path.Combine(folder, "q.npy")),
            NpyFile.Read(Path.Combine(folder, "k.npy")),
            NpyFile.Read(Path.Combine(folder, "v.npy")),
            File.Exists(gatePath) ? NpyFile.Read(gatePath) : null,
            NpyFile.Read(Path.Combine(folder, "y.npy")),
            options);
    }

    public void Dispose()
    {
        Q.Dispose();
        K.Dispose();
        V.Dispose();
        LogG?.Dispose();
        Y.Dispose();
    }
}
