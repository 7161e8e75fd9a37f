using System.Diagnostics.CodeAnalysis;

namespace PowerRetention.Kernels;

/// <summary>Argument checks at the public edge, with messages that name the tensor, shape and index.</summary>
internal static class RetentionValidation
{
    // Values are scanned in blocks so that memory-mapped inputs are read sequentially once.
    private const int ScanBlock = 1 << 16;

    public static void CheckDegree(int degree)
    {
        if (degree < 2 || degree % 2 != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(degree), degree, $"Degree must be even and at least 2; got {degree}.");
        }
    }

    public static float ResolveScale(float? scale, int keyDim)
    {
        float value = scale ?? (1f / MathF.Sqrt(keyDim));
        if (!float.IsFinite(value) || value <= 0f)
        {
            throw new ArgumentOutOfRangeException(nameof(scale), value, $"Scale must be finite and positive; got {value}.");
        }

        return value;
    }

    /// <summary>Throws when b * h states of D x (e + 1) floats would not fit in the memory available to this process.</summary>
    public static void CheckStateFits(long batch, long heads, long expandedDim, long valueDim, string what)
    {
        double bytes = (double)batch * heads * expandedDim * (valueDim + 1) * sizeof(float);
        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (expandedDim == long.MaxValue || bytes > available || expandedDim > Array.MaxLength || (double)expandedDim * valueDim > Array.MaxLength)
        {
            throw new InsufficientMemoryException(
                $"The {what} needs {bytes:N0} bytes (b={batch}, h={heads}, D={(expandedDim == long.MaxValue ? "overflow" : expandedDim.ToString(System.Globalization.CultureInfo.InvariantCulture))}, e={valueDim}, float32), " +
                $"but {available:N0} bytes are available and one head's state must fit in one array; lower the degree or the head dimension.");
        }
    }

    public static void CheckRank(Tensor tensor, string name, int rank, string layout)
    {
        if (tensor.Rank != rank)
        {
            throw new ArgumentException($"{name} must have shape {layout}; got {Tensor.FormatShape(tensor.Shape)}.", name);
        }
    }

    public static void CheckDim(Tensor tensor, string name, int axis, int expected, string what, string layout)
    {
        if (tensor.Dim(axis) != expected)
        {
            throw new ArgumentException($"{name} has shape {Tensor.FormatShape(tensor.Shape)} but its {what} (axis {axis} of {layout}) must be {expected}.", name);
        }
    }

    /// <summary>Throws on the first NaN or infinity, naming its index.</summary>
    public static void CheckFinite(Tensor tensor, string name) => CheckTokens(tensor, name, requireNonPositive: false, 0, tensor.Rank > 1 ? tensor.Dim(1) : 0, 0);

    /// <summary>Throws on the first NaN, infinity or positive value, naming its index.</summary>
    public static void CheckLogGates(Tensor tensor, string name) => CheckTokens(tensor, name, requireNonPositive: true, 0, tensor.Rank > 1 ? tensor.Dim(1) : 0, 0);

    /// <summary>
    /// Scans tokens [start, end) of every batch entry of a (b, t, ...) tensor for NaN, infinity and, for
    /// log-gates, positive values. Reported indices add <paramref name="tokenOffset"/> to the token axis.
    /// </summary>
    public static void CheckTokens(Tensor tensor, string name, bool requireNonPositive, int start, int end, int tokenOffset)
    {
        if (tensor.Rank < 2)
        {
            Scan(tensor, name, requireNonPositive, 0, tensor.ElementCount, 0);
            return;
        }

        long inner = tensor.ElementCount / Math.Max(1L, (long)tensor.Dim(0) * tensor.Dim(1));
        for (int batch = 0; batch < tensor.Dim(0); batch++)
        {
            long first = (((long)batch * tensor.Dim(1)) + start) * inner;
            Scan(tensor, name, requireNonPositive, first, first + ((long)(end - start) * inner), tokenOffset);
        }
    }

    private static void Scan(Tensor tensor, string name, bool requireNonPositive, long first, long last, int tokenOffset)
    {
        float[] buffer = System.Buffers.ArrayPool<float>.Shared.Rent(ScanBlock);
        try
        {
            for (long start = first; start < last; start += ScanBlock)
            {
                int count = (int)Math.Min(ScanBlock, last - start);
                Span<float> block = buffer.AsSpan(0, count);
                tensor.Storage.Read(start, block);
                for (int i = 0; i < count; i++)
                {
                    float value = block[i];
                    if (!float.IsFinite(value))
                    {
                        ThrowBadValue(tensor, name, start + i, tokenOffset, value, "is not finite");
                    }

                    if (requireNonPositive && value > 0f)
                    {
                        ThrowBadValue(tensor, name, start + i, tokenOffset, value, "is positive; log-gates must be <= 0");
                    }
                }
            }
        }
        finally
        {
            System.Buffers.ArrayPool<float>.Shared.Return(buffer);
        }
    }

    [DoesNotReturn]
    private static void ThrowBadValue(Tensor tensor, string name, long flatIndex, int tokenOffset, float value, string problem)
    {
        throw new ArgumentException($"{name}{FormatIndex(tensor.Shape, flatIndex, tokenOffset)} = {value} {problem}.", name);
    }

    /// <summary>Formats a flat index as [i0, i1, ...] for the given shape, adding <paramref name="tokenOffset"/> to axis 1.</summary>
    public static string FormatIndex(ReadOnlySpan<int> shape, long flatIndex, int tokenOffset)
    {
        var parts = new long[shape.Length];
        for (int axis = shape.Length - 1; axis >= 0; axis--)
        {
            parts[axis] = shape[axis] == 0 ? 0 : flatIndex % shape[axis];
            flatIndex = shape[axis] == 0 ? 0 : flatIndex / shape[axis];
        }

        if (parts.Length > 1)
        {
            parts[1] += tokenOffset;
        }

        return "[" + string.Join(", ", parts) + "]";
    }
}
