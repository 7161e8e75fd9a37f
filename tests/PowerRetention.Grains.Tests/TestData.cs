using PowerRetention.Kernels;
using PowerRetention.Kernels.IO;

namespace PowerRetention.Grains.Tests;

/// <summary>Inputs, files and error measures for the cluster tests.</summary>
internal static class TestData
{
    public static RetentionInputs Inputs(int time, int seed = 11, int batch = 1, int heads = 2, int queryHeads = 4, int dim = 8, DataType dataType = DataType.Float32) =>
        SyntheticInputs.Create(batch, time, heads, dim, queryHeads, dim, gating: true, seed, dataType);

    public static double RelativeError(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        double difference = 0, norm = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            double delta = (double)actual[i] - expected[i];
            difference += delta * delta;
            norm += (double)expected[i] * expected[i];
        }

        return norm == 0 ? Math.Sqrt(difference) : Math.Sqrt(difference / norm);
    }

    public static void Within(double error, double bound, string what) =>
        Assert.True(error <= bound, $"{what}: relative error {error:E3} is above {bound:E1}.");

    /// <summary>Writes q, k, v, log_g as .npy files in a new temporary folder.</summary>
    public static (string Folder, InputFiles Files) WriteNpy(RetentionInputs inputs)
    {
        string folder = Directory.CreateTempSubdirectory("powerret-grains-").FullName;
        NpyFile.Write(Path.Combine(folder, "q.npy"), inputs.Q);
        NpyFile.Write(Path.Combine(folder, "k.npy"), inputs.K);
        NpyFile.Write(Path.Combine(folder, "v.npy"), inputs.V);
        NpyFile.Write(Path.Combine(folder, "log_g.npy"), inputs.LogG!);
        return (folder, new InputFiles(Path.Combine(folder, "q.npy"), Path.Combine(folder, "k.npy"), Path.Combine(folder, "v.npy"), Path.Combine(folder, "log_g.npy"), null));
    }

    public static float[] ReadOutput(string path)
    {
        if (TensorFiles.IsSafetensors(path))
        {
            using SafetensorsReader reader = SafetensorsFile.Open(path);
            using Tensor y = reader.GetTensor("y");
            return y.ToSingleArray();
        }

        using Tensor tensor = NpyFile.Read(path);
        return tensor.ToSingleArray();
    }

    public static string[] FilesIn(string folder) => Directory.GetFiles(folder).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray()!;
}
