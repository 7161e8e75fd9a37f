namespace PowerRetention.Kernels.Tests;

public sealed unsafe class AlignedBufferTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(17)]
    [InlineData(1040 * 64)]
    public void Buffer_StartsOnCacheLineAndIsZeroed(int length)
    {
        var buffer = new AlignedBuffer(length);

        Assert.Equal(0, (long)buffer.Pointer % 64);
        Assert.Equal(length, buffer.Length);
        Assert.Equal(length, buffer.Span.Length);
        Assert.All(buffer.Span.ToArray(), value => Assert.Equal(0f, value));
    }

    [Fact]
    public void Buffer_SpansAndIndexerShareMemory()
    {
        var buffer = new AlignedBuffer(8);

        buffer[3] = 2.5f;
        buffer.AsSpan(5, 2).Fill(1f);

        Assert.Equal(2.5f, buffer.Span[3]);
        Assert.Equal([0f, 0f, 0f, 2.5f, 0f, 1f, 1f, 0f], buffer.Span.ToArray());
        Assert.Throws<ArgumentOutOfRangeException>(() => buffer.AsSpan(7, 2));
    }
}
