namespace PowerRetention.Kernels.Tests;

public sealed class FloatConversionTests
{
    [Theory]
    [InlineData(1f, 0x3F80)]
    [InlineData(-2f, 0xC000)]
    [InlineData(0f, 0x0000)]
    [InlineData(float.PositiveInfinity, 0x7F80)]
    public void BFloat16_EncodesExactValues(float value, int bits)
    {
        Assert.Equal((ushort)bits, FloatConversion.SingleToBFloat16(value));
        Assert.Equal(value, FloatConversion.BFloat16ToSingle((ushort)bits));
    }

    [Fact]
    public void BFloat16_RoundsToNearestEven()
    {
        // 1 + 2^-8 is halfway between bfloat16 1 and 1 + 2^-7: ties go to the even mantissa (1).
        Assert.Equal(0x3F80, FloatConversion.SingleToBFloat16(1f + MathF.Pow(2, -8)));

        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even).
        Assert.Equal(0x3F82, FloatConversion.SingleToBFloat16(1f + (3 * MathF.Pow(2, -8))));

        // Just above halfway rounds up.
        Assert.Equal(0x3F81, FloatConversion.SingleToBFloat16(1f + MathF.Pow(2, -8) + MathF.Pow(2, -20)));
    }

    [Fact]
    public void BFloat16_KeepsNaN()
    {
        Assert.True(float.IsNaN(FloatConversion.BFloat16ToSingle(FloatConversion.SingleToBFloat16(float.NaN))));
    }

    [Fact]
    public void Float16_RoundTripsRepresentableValues()
    {
        foreach (float value in new[] { 0.5f, -3.25f, 65504f, 6.1035156e-05f })
        {
            Assert.Equal(value, FloatConversion.Float16ToSingle(FloatConversion.SingleToFloat16(value)));
        }
    }
}
