using System.Text;
using PowerRetention.Kernels;
using PowerRetention.Kernels.IO;

namespace PowerRetention.Cli.Tests.Support;

/// <summary>Reads, writes, slices and compares tensor files for the tests.</summary>
internal static class TestTensorFiles
{
    /// <summary>Reads every element of an .npy file as float32.</summary>
    public static float[] ReadNpy(string path)
    {
        using Tensor tensor = NpyFile.Read(path);
        return tensor.ToSingleArray();
    }

    /// <summary>Reads a tensor of a .safetensors file as float32, with its type and shape.</summary>
    public static (float[] Values, DataType DataType, int[] Shape) ReadSafetensors(string path, string name)
    {
        using SafetensorsReader reader = SafetensorsFile.Open(path);
        using Tensor tensor = reader.GetTensor(name);
        return (tensor.ToSingleArray(), tensor.DataType, tensor.Shape.ToArray());
    }

    /// <summary>Writes float32 values with the given shape to an .npy file.</summary>
    public static void WriteNpy(string path, float[] values, params int[] shape) =>
        NpyFile.Write(path, Tensor.FromArray(values, shape));

    /// <summary>Writes tokens [start, end) of a (b, t, ...) .npy file to another .npy file.</summary>
    public static void SliceTime(string source, string destination, int start, int end)
    {
        using Tensor tensor = NpyFile.Read(source);
        int[] shape = tensor.Shape.ToArray();
        int time = shape[1];
        long inner = tensor.ElementCount / ((long)shape[0] * time);
        shape[1] = end - start;
        var values = new float[shape[0] * (end - start) * inner];
        for (int b = 0; b < shape[0]; b++)
        {
            tensor.Storage.Read(((long)b * time + start) * inner, values.AsSpan((int)(b * (end - start) * inner), (int)((end - start) * inner)));
        }

        NpyFile.Write(destination, Tensor.FromSingles(tensor.DataType, values, shape));
    }

    /// <summary>
    /// Writes an .npy file byte by byte, so the tests can make files the library refuses to write:
    /// other dtypes, Fortran order, truncated data.
    /// </summary>
    public static void WriteRawNpy(string path, string descr, bool fortranOrder, int[] shape, byte[] data)
    {
        string dims = shape.Length == 1 ? $"{shape[0]}," : string.Join(", ", shape);
        string dictionary = $"{{'descr': '{descr}', 'fortran_order': {(fortranOrder ? "True" : "False")}, 'shape': ({dims}), }}";
        int unpadded = 10 + dictionary.Length + 1;
        string header = dictionary + new string(' ', (64 - (unpadded % 64)) % 64) + "\n";
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write);
        stream.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0]);
        stream.Write(BitConverter.GetBytes((ushort)header.Length));
        stream.Write(Encoding.ASCII.GetBytes(header));
        stream.Write(data);
    }

    /// <summary>Returns ||actual - expected|| / ||expected|| (Frobenius), computed in double.</summary>
    public static double RelativeError(float[] actual, float[] expected)
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
}
