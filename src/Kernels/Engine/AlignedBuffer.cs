using System.Diagnostics;
using System.Runtime.InteropServices;

namespace PowerRetention.Kernels;

/// <summary>
/// A zeroed float buffer in native memory that starts on a 64-byte cache line, so that vector loads
/// at multiples of the vector width never straddle two lines. Freed when the buffer is collected:
/// a method that works through <see cref="Pointer"/> must keep its owner alive until it is done.
/// </summary>
internal sealed unsafe class AlignedBuffer
{
    private const int Alignment = 64;
    private readonly long _bytes;

    /// <summary>Allocates <paramref name="length"/> zeroed floats.</summary>
    public AlignedBuffer(int length)
    {
        Debug.Assert(length >= 0);
        Length = length;
        _bytes = Math.Max(1L, (long)length * sizeof(float));
        Pointer = (float*)NativeMemory.AlignedAlloc((nuint)_bytes, Alignment);
        NativeMemory.Clear(Pointer, (nuint)_bytes);
        GC.AddMemoryPressure(_bytes);
    }

    ~AlignedBuffer()
    {
        NativeMemory.AlignedFree(Pointer);
        GC.RemoveMemoryPressure(_bytes);
    }

    /// <summary>First element, 64-byte aligned.</summary>
    public float* Pointer { get; }

    /// <summary>Number of floats.</summary>
    public int Length { get; }

    /// <summary>The element at <paramref name="index"/>.</summary>
    public ref float this[int index]
    {
        get
        {
            Debug.Assert((uint)index < (uint)Length);
            return ref Pointer[index];
        }
    }

    /// <summary>Returns the first element, so that <c>fixed</c> statements accept the buffer (it never moves).</summary>
    public ref float GetPinnableReference() => ref *Pointer;

    /// <summary>The whole buffer as a span.</summary>
    public Span<float> Span => new(Pointer, Length);

    /// <summary>Elements <paramref name="start"/> to <paramref name="start"/> + <paramref name="length"/>, bounds-checked.</summary>
    public Span<float> AsSpan(int start, int length) => Span.Slice(start, length);
}
