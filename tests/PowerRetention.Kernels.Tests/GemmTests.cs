using PowerRetention.Kernels.Linear;

namespace PowerRetention.Kernels.Tests;

public sealed unsafe class GemmTests
{
    [Fact]
    public void MultiplyAdd_MatchesPlainLoops()
    {
        var random = new Random(5);
        int[] sizes = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33];
        foreach (int m in sizes)
        {
            foreach (int n in sizes)
            {
                foreach (int k in new[] { 1, 3, 8, 19 })
                {
                    foreach (bool transposedA in new[] { false, true })
                    {
                        float[] a = Random(random, m * k);
                        float[] b = Random(random, k * n);
                        float[] c = Random(random, m * n);
                        double[] expected = new double[m * n];
                        for (int i = 0; i < m; i++)
                        {
                            for (int j = 0; j < n; j++)
                            {
                                double sum = c[i * n + j];
                                for (int l = 0; l < k; l++)
                                {
                                    float aValue = transposedA ? a[l * m + i] : a[i * k + l];
                                    sum += (double)aValue * b[l * n + j];
                                }

                                expected[i * n + j] = sum;
                            }
                        }

                        fixed (float* aPtr = a, bPtr = b, cPtr = c)
                        {
                            Gemm.MultiplyAdd(m, n, k, aPtr, transposedA ? 1 : k, transposedA ? m : 1, bPtr, n, cPtr, n);
                        }

                        for (int i = 0; i < m * n; i++)
                        {
                            Assert.True(Math.Abs(c[i] - expected[i]) <= 1e-5 * (1 + Math.Abs(expected[i])), $"m={m} n={n} k={k} transposed={transposedA}: C[{i}] = {c[i]}, expected {expected[i]}");
                        }
                    }
                }
            }
        }
    }

    private static float[] Random(Random random, int count) =>
        Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
}
