namespace PowerRetention.Kernels;

/// <summary>
/// A dense, C-ordered tensor whose elements live in a <see cref="TensorStorage"/>. Retention inputs use
/// the (batch, time, heads, dim) layout of the Python library.
/// </summary>
public sealed class Tensor : IDisposable
{
    private readonly int[] _shape;

    /// <summary>Wraps <paramref name="storage"/> with the given shape.</summary>
    /// <exception cref="ArgumentException">The shape has a negative dimension or does not match the storage length.</exception>
    public Tensor(TensorStorage storage, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(storage);
        long count = ElementCountOf(shape);
        if (count != storage.Length)
        {
            throw new ArgumentException($"Shape {FormatShape(shape)} has {count} elements but the storage has {storage.Length}.", nameof(shape));
        }

        Storage = storage;
        _shape = (int[])shape.Clone();
    }

    /// <summary>The element storage.</summary>
    public TensorStorage Storage { get; }

    /// <summary>Element type of the storage.</summary>
    public DataType DataType => Storage.DataType;

    /// <summary>Dimensions, outermost first.</summary>
    public ReadOnlySpan<int> Shape => _shape;

    /// <summary>Number of dimensions.</summary>
    public int Rank => _shape.Length;

    /// <summary>Total number of elements.</summary>
    public long ElementCount => Storage.Length;

    /// <summary>Returns the size of dimension <paramref name="axis"/>.</summary>
    public int Dim(int axis) => _shape[axis];

    /// <summary>Creates a zero-filled tensor of the given type and shape in managed memory.</summary>
    public static Tensor Zeros(DataType dataType, params int[] shape)
    {
        long count = ElementCountOf(shape);
        if (count > Array.MaxLength)
        {
            throw new ArgumentException($"A tensor of shape {FormatShape(shape)} has {count} elements, more than one managed array holds ({Array.MaxLength}); use a file-backed tensor.", nameof(shape));
        }

        TensorStorage storage = dataType == DataType.Float32
            ? new SingleArrayStorage(new float[count])
            : new HalfArrayStorage(dataType, new ushort[count]);
        return new Tensor(storage, shape);
    }

    /// <summary>Wraps a float array (not copied) with the given shape.</summary>
    public static Tensor FromArray(float[] values, params int[] shape) => new(new SingleArrayStorage(values), shape);

    /// <summary>Copies float values into a new tensor of the given type, rounding to 16 bits where needed.</summary>
    public static Tensor FromSingles(DataType dataType, ReadOnlySpan<float> values, params int[] shape)
    {
        Tensor tensor = Zeros(dataType, shape);
        tensor.Storage.Write(0, values);
        return tensor;
    }

    /// <summary>Returns every element widened to float32 in a new array.</summary>
    public float[] ToSingleArray()
    {
        if (ElementCount > Array.MaxLength)
        {
            throw new InvalidOperationException($"Tensor of shape {FormatShape(_shape)} is too large for one managed array.");
        }

        var result = new float[ElementCount];
        Storage.Read(0, result);
        return result;
    }

    /// <summary>Returns a copy of this tensor with its elements converted to <paramref name="dataType"/>.</summary>
    public Tensor ConvertTo(DataType dataType) => FromSingles(dataType, ToSingleArray(), _shape);

    /// <summary>Formats a shape as (a, b, c).</summary>
    public static string FormatShape(ReadOnlySpan<int> shape) => "(" + string.Join(", ", shape.ToArray()) + ")";

    /// <summary>Returns the product of the dimensions.</summary>
    /// <exception cref="ArgumentException">A dimension is negative.</exception>
    public static long ElementCountOf(ReadOnlySpan<int> shape)
    {
        long count = 1;
        for (int i = 0; i < shape.Length; i++)
        {
            if (shape[i] < 0)
            {
                throw new ArgumentException($"Dimension {i} of shape {FormatShape(shape)} is negative.", nameof(shape));
            }

            count = checked(count * shape[i]);
        }

        return count;
    }

    /// <inheritdoc />
    public override string ToString() => $"Tensor{FormatShape(_shape)} {DataType.ShortName()}";

    /// <summary>Disposes the storage, which releases any file mapping.</summary>
    public void Dispose() => Storage.Dispose();
}
