using System.Runtime.CompilerServices;

namespace PowerRetention.Kernels;

/// <summary>Conversions between float32 and the 16-bit storage formats.</summary>
public static class FloatConversion
{
    /// <summary>Widens a bfloat16 bit pattern to float32 exactly.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float BFloat16ToSingle(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>Rounds a float32 to the nearest bfloat16 (ties to even); NaN stays NaN.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort SingleToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value))
        {
            // Keep a quiet NaN: plain truncation could clear every mantissa bit and produce infinity.
            return (ushort)((bits >> 16) | 0x0040);
        }

        uint roundingBias = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + roundingBias) >> 16);
    }

    /// <summary>Widens a binary16 bit pattern to float32 exactly.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Float16ToSingle(ushort bits) => (float)BitConverter.UInt16BitsToHalf(bits);

    /// <summary>Rounds a float32 to the nearest binary16 (ties to even).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort SingleToFloat16(float value) => BitConverter.HalfToUInt16Bits((Half)value);

    /// <summary>Converts 16-bit patterns of the given type to float32.</summary>
    public static void ToSingle(DataType dataType, ReadOnlySpan<ushort> source, Span<float> destination)
    {
        if (dataType == DataType.BFloat16)
        {
            for (int i = 0; i < source.Length; i++)
            {
                destination[i] = BFloat16ToSingle(source[i]);
            }
        }
        else
        {
            for (int i = 0; i < source.Length; i++)
            {
                destination[i] = Float16ToSingle(source[i]);
            }
        }
    }

    /// <summary>Rounds float32 values to 16-bit patterns of the given type.</summary>
    public static void FromSingle(DataType dataType, ReadOnlySpan<float> source, Span<ushort> destination)
    {
        if (dataType == DataType.BFloat16)
        {
            for (int i = 0; i < source.Length; i++)
            {
                destination[i] = SingleToBFloat16(source[i]);
            }
        }
        else
        {
            for (int i = 0; i < source.Length; i++)
            {
                destination[i] = SingleToFloat16(source[i]);
            }
        }
    }
}
