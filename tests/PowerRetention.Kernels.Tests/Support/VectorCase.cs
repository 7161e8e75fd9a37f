using System.Text.Json;
using PowerRetention.Kernels.IO;

namespace PowerRetention.Kernels.Tests.Support;

/// <summary>A reference case: inputs and the float64 quadratic-form output, from TestData/vectors.</summary>
internal sealed class VectorCase : IDisposable
{
    private VectorCase(string name, Tensor q, Tensor k, Tensor v, Tensor? logG, Tensor y, int degree, float? scale, int chunkSize, int expandedDim)
    {
        Name = name;
        Q = q;
        K = k;
        V = v;
        LogG = logG;
        Y = y;
        Degree = degree;
        Scale = scale;
        ChunkSize = chunkSize;
        ExpandedDim = expandedDim;
    }

    public string Name { get; }

    public Tensor Q { get; }

    public Tensor K { get; }

    public Tensor V { get; }

    public Tensor? LogG { get; }

    public Tensor Y { get; }

    public int Degree { get; }

    public float? Scale { get; }

    public int ChunkSize { get; }

    public int ExpandedDim { get; }

    public static string Root => Path.Combine(AppContext.BaseDirectory, "TestData", "vectors");

    public static IEnumerable<object[]> Names() =>
        Directory.GetDirectories(Root).Select(Path.GetFileName).Order(StringComparer.Ordinal).Select(name => new object[] { name! });

    public static VectorCase Load(string name)
    {
        string folder = Path.Combine(Root, name);
        using JsonDocument json = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "case.json")));
        JsonElement root = json.RootElement;
        float? scale = root.GetProperty("scale").ValueKind == JsonValueKind.Null ? null : root.GetProperty("scale").GetSingle();
        string gatePath = Path.Combine(folder, "log_g.npy");
        return new VectorCase(
            name,
            NpyFile.Read(Path.Combine(folder, "q.npy")),
            NpyFile.Read(Path.Combine(folder, "k.npy")),
            NpyFile.Read(Path.Combine(folder, "v.npy")),
            File.Exists(gatePath) ? NpyFile.Read(gatePath) : null,
            NpyFile.Read(Path.Combine(folder, "y.npy")),
            root.GetProperty("deg").GetInt32(),
            scale,
            root.GetProperty("chunk_size").GetInt32(),
            root.GetProperty("expanded_dim").GetInt32());
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
