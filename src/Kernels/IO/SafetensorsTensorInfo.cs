namespace PowerRetention.Kernels.IO;

/// <summary>One tensor entry of a safetensors header: dtype, shape and where its bytes lie.</summary>
public sealed class SafetensorsTensorInfo
{
    private readonly int[] _shape;

    internal SafetensorsTensorInfo(string name, string dtypeName, DataType? dataType, int[] shape, long dataBegin, long dataEnd)
    {
        Name = name;
        DtypeName = dtypeName;
        DataType = dataType;
        _shape = shape;
        DataBegin = dataBegin;
        DataEnd = dataEnd;
    }

    /// <summary>The tensor's name, the key in the header.</summary>
    public string Name { get; }

    /// <summary>The dtype as written in the header, such as F32, BF16 or I64.</summary>
    public string DtypeName { get; }

    /// <summary>The element type, or null when the dtype is not F32, F16 or BF16.</summary>
    public DataType? DataType { get; }

    /// <summary>Dimensions, outermost first.</summary>
    public ReadOnlySpan<int> Shape => _shape;

    /// <summary>Product of the dimensions.</summary>
    public long ElementCount => Tensor.ElementCountOf(_shape);

    /// <summary>Offset of the first byte, relative to the start of the data buffer that follows the header.</summary>
    public long DataBegin { get; }

    /// <summary>Offset one past the last byte, relative to the start of the data buffer.</summary>
    public long DataEnd { get; }

    /// <inheritdoc />
    public override string ToString() => $"{Name}: {DtypeName} {Tensor.FormatShape(_shape)}";

    internal int[] ShapeArray => _shape;
}
