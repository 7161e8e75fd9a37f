namespace PowerRetention.Kernels.IO;

/// <summary>Streams a tensor's elements as little-endian bytes of its own data type.</summary>
internal static class TensorBytes
{
    private const int BlockElements = 1 << 16;

    public static void CopyTo(Tensor tensor, Stream stream)
    {
        int elementSize = tensor.DataType.SizeInBytes();
        var floats = new float[BlockElements];
        var halves = new ushort[BlockElements];
        var bytes = new byte[BlockElements * elementSize];
        for (long start = 0; start < tensor.ElementCount; start += BlockElements)
        {
            int count = (int)Math.Min(BlockElements, tensor.ElementCount - start);
            Span<float> block = floats.AsSpan(0, count);
            tensor.Storage.Read(start, block);
            if (tensor.DataType == DataType.Float32)
            {
                System.Runtime.InteropServices.MemoryMarshal.AsBytes(block).CopyTo(bytes);
            }
            else
            {
                FloatConversion.FromSingle(tensor.DataType, block, halves.AsSpan(0, count));
                System.Runtime.InteropServices.MemoryMarshal.AsBytes(halves.AsSpan(0, count)).CopyTo(bytes);
            }

            stream.Write(bytes, 0, count * elementSize);
        }
    }
}
