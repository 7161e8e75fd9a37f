namespace PowerRetention.Kernels;

/// <summary>
/// Flat element storage behind a <see cref="Tensor"/>: managed arrays or a memory-mapped file.
/// Reads widen to float32 and writes round from float32, so kernels see one element type.
/// </summary>
public abstract class TensorStorage : IDisposable
{
    /// <summary>Element type of the stored values.</summary>
    public abstract DataType DataType { get; }

    /// <summary>Number of elements.</summary>
    public abstract long Length { get; }

    /// <summary>Copies <paramref name="destination"/>.Length elements starting at <paramref name="offset"/>, widened to float32.</summary>
    public abstract void Read(long offset, Span<float> destination);

    /// <summary>Stores <paramref name="source"/> starting at element <paramref name="offset"/>, rounded to the storage type.</summary>
    public abstract void Write(long offset, ReadOnlySpan<float> source);

    /// <summary>Releases file mappings; array storage has nothing to release.</summary>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases resources held by the storage.</summary>
    protected virtual void Dispose(bool disposing)
    {
    }
}

/// <summary>Storage in a managed float array.</summary>
public sealed class SingleArrayStorage(float[] values) : TensorStorage
{
    /// <summary>The backing array, shared, not copied.</summary>
    public float[] Values { get; } = values;

    /// <inheritdoc />
    public override DataType DataType => DataType.Float32;

    /// <inheritdoc />
    public override long Length => Values.LongLength;

    /// <inheritdoc />
    public override void Read(long offset, Span<float> destination) =>
        Values.AsSpan(checked((int)offset), destination.Length).CopyTo(destination);

    /// <inheritdoc />
    public override void Write(long offset, ReadOnlySpan<float> source) =>
        source.CopyTo(Values.AsSpan(checked((int)offset), source.Length));
}

/// <summary>Storage of 16-bit values (float16 or bfloat16 bit patterns) in a managed array.</summary>
public sealed class HalfArrayStorage : TensorStorage
{
    private readonly DataType _dataType;

    /// <summary>Wraps <paramref name="bits"/>, which hold values of <paramref name="dataType"/>.</summary>
    /// <exception cref="ArgumentException"><paramref name="dataType"/> is not a 16-bit type.</exception>
    public HalfArrayStorage(DataType dataType, ushort[] bits)
    {
        if (dataType == DataType.Float32)
        {
            throw new ArgumentException("HalfArrayStorage holds float16 or bfloat16 values, not float32.", nameof(dataType));
        }

        _dataType = dataType;
        Bits = bits;
    }

    /// <summary>The backing bit patterns, shared, not copied.</summary>
    public ushort[] Bits { get; }

    /// <inheritdoc />
    public override DataType DataType => _dataType;

    /// <inheritdoc />
    public override long Length => Bits.LongLength;

    /// <inheritdoc />
    public override void Read(long offset, Span<float> destination) =>
        FloatConversion.ToSingle(_dataType, Bits.AsSpan(checked((int)offset), destination.Length), destination);

    /// <inheritdoc />
    public override void Write(long offset, ReadOnlySpan<float> source) =>
        FloatConversion.FromSingle(_dataType, source, Bits.AsSpan(checked((int)offset), source.Length));
}

/// <summary>
/// Storage over unmanaged memory, such as a memory-mapped view. The owner passed in is disposed
/// with the storage and keeps the memory alive until then.
/// </summary>
public sealed unsafe class UnmanagedStorage : TensorStorage
{
    private readonly byte* _data;
    private readonly DataType _dataType;
    private readonly long _length;
    private readonly bool _writable;
    private IDisposable? _owner;
    private bool _disposed;

    /// <summary>Wraps <paramref name="length"/> elements of <paramref name="dataType"/> at <paramref name="data"/>.</summary>
    public UnmanagedStorage(byte* data, DataType dataType, long length, bool writable, IDisposable? owner)
    {
        _data = data;
        _dataType = dataType;
        _length = length;
        _writable = writable;
        _owner = owner;
    }

    /// <inheritdoc />
    public override DataType DataType => _dataType;

    /// <inheritdoc />
    public override long Length => _length;

    /// <inheritdoc />
    public override void Read(long offset, Span<float> destination)
    {
        CheckRange(offset, destination.Length);
        if (_dataType == DataType.Float32)
        {
            new ReadOnlySpan<float>(_data + (offset * 4), destination.Length).CopyTo(destination);
        }
        else
        {
            FloatConversion.ToSingle(_dataType, new ReadOnlySpan<ushort>(_data + (offset * 2), destination.Length), destination);
        }
    }

    /// <inheritdoc />
    public override void Write(long offset, ReadOnlySpan<float> source)
    {
        if (!_writable)
        {
            throw new InvalidOperationException("This tensor is backed by a read-only file mapping.");
        }

        CheckRange(offset, source.Length);
        if (_dataType == DataType.Float32)
        {
            source.CopyTo(new Span<float>(_data + (offset * 4), source.Length));
        }
        else
        {
            FloatConversion.FromSingle(_dataType, source, new Span<ushort>(_data + (offset * 2), source.Length));
        }
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _owner?.Dispose();
            _owner = null;
        }

        _disposed = true;
    }

    private void CheckRange(long offset, int count)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (offset < 0 || offset + count > _length)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"Elements [{offset}, {offset + count}) are outside storage of {_length} elements.");
        }
    }
}
