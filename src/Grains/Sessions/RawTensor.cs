using System.Runtime.InteropServices;
using PowerRetention.Kernels;

namespace PowerRetention.Grains;

/// <summary>
/// A tensor on the wire: its shape, its element type and its elements in C order as raw little-endian
/// bytes, so that a message carries one block of bytes per tensor instead of one value per element.
/// </summary>
/// <param name="Shape">Dimensions, outermost first.</param>
/// <param name="DataType">Element type of <paramref name="Data"/>.</param>
/// <param name="Data">Elements as float32, float16 or bfloat16 bits, little-endian.</param>
[GenerateSerializer, Immutable, Alias("powerret.RawTensor")]
public sealed record RawTensor(
    [property: Id(0)] int[] Shape,
    [property: Id(1)] DataType DataType,
    [property: Id(2)] byte[] Data)
{
    /// <summary>Copies a tensor's elements into a new raw tensor of the same data type.</summary>
    /// <exception cref="ArgumentException">The tensor has more elements than one byte array holds.</exception>
    public static RawTensor FromTensor(Tensor tensor)
    {
        // NOTE: elements are copied in host byte order, so this assumes a little-endian host such as x64 or Arm64.
        ArgumentNullException.ThrowIfNull(tensor);
        long bytes = tensor.ElementCount * tensor.DataType.SizeInBytes();
        if (bytes > Array.MaxLength)
        {
            throw new ArgumentException($"Tensor {tensor} needs {bytes} bytes, more than one byte array holds ({Array.MaxLength}).", nameof(tensor));
        }

        float[] values = tensor.ToSingleArray();
        if (tensor.DataType == DataType.Float32)
        {
            return new RawTensor(tensor.Shape.ToArray(), DataType.Float32, MemoryMarshal.AsBytes(values.AsSpan()).ToArray());
        }

        var bits = new ushort[values.Length];
        FloatConversion.FromSingle(tensor.DataType, values, bits);
        return new RawTensor(tensor.Shape.ToArray(), tensor.DataType, MemoryMarshal.AsBytes(bits.AsSpan()).ToArray());
    }

    /// <summary>Returns the number of elements the shape describes.</summary>
    /// <exception cref="ArgumentException">A dimension is negative or the product overflows.</exception>
    public long ElementCount => Tensor.ElementCountOf(Shape);

    /// <summary>Copies the bytes into a new tensor, checking that their length matches the shape.</summary>
    /// <param name="name">Names the tensor in error messages, such as "Q".</param>
    /// <exception cref="ArgumentException">The shape is missing or negative, or the byte count does not match it.</exception>
    public Tensor ToTensor(string name)
    {
        if (Shape is null || Data is null)
        {
            throw new ArgumentException($"{name} has no {(Shape is null ? "shape" : "data")}.", name);
        }

        long elements;
        try
        {
            elements = ElementCount;
        }
        catch (Exception error) when (error is ArgumentException or OverflowException)
        {
            throw new ArgumentException($"{name} has an invalid shape {Tensor.FormatShape(Shape)}: {error.Message}", name, error);
        }

        long expected = elements * DataType.SizeInBytes();
        if (Data.LongLength != expected)
        {
            throw new ArgumentException($"{name} of shape {Tensor.FormatShape(Shape)} in {DataType.ShortName()} needs {expected} bytes, but {Data.LongLength} were sent.", name);
        }

        if (DataType == DataType.Float32)
        {
            var values = new float[elements];
            Data.AsSpan().CopyTo(MemoryMarshal.AsBytes(values.AsSpan()));
            return Tensor.FromArray(values, Shape);
        }

        var bits = new ushort[elements];
        Data.AsSpan().CopyTo(MemoryMarshal.AsBytes(bits.AsSpan()));
        return new Tensor(new HalfArrayStorage(DataType, bits), Shape);
    }
}
