using System.Collections.Concurrent;

namespace PowerRetention.Kernels;

/// <summary>
/// Index tables of the symmetric power embedding of degree p over d dimensions: one feature per
/// multiset i1 &lt;= ... &lt;= ip of 0..d-1, in lexicographic order, so D = C(d + p - 1, p).
/// phiQ(x)_f = x_i1 * ... * x_ip and phiK(x)_f = (p! / prod m!) * x_i1 * ... * x_ip, which makes
/// phiQ(q) . phiK(k) = (q . k)^p exactly. Tables are built once per (d, p) and cached.
/// </summary>
public sealed class SymmetricPowerBasis
{
    private static readonly ConcurrentDictionary<(int Dim, int Degree), Lazy<SymmetricPowerBasis>> s_cache = new();

    private SymmetricPowerBasis(int dim, int degree)
    {
        Dim = dim;
        Degree = degree;
        ExpandedDim = checked((int)ExpandedDimOf(dim, degree));
        Indices = new int[checked(ExpandedDim * degree)];
        KeyCoefficients = new float[ExpandedDim];
        Fill();
    }

    /// <summary>Input dimension d.</summary>
    public int Dim { get; }

    /// <summary>Degree p.</summary>
    public int Degree { get; }

    /// <summary>Number of features D = C(d + p - 1, p).</summary>
    public int ExpandedDim { get; }

    /// <summary>Feature f's indices are Indices[f * p .. f * p + p - 1], non-decreasing.</summary>
    public int[] Indices { get; }

    /// <summary>Multinomial coefficient p! / prod(m!) of each feature, applied on the key side.</summary>
    public float[] KeyCoefficients { get; }

    /// <summary>Returns the cached basis for (d, p), building it on first use.</summary>
    /// <exception cref="ArgumentOutOfRangeException">d &lt; 1, p &lt; 1, or D does not fit in an int.</exception>
    public static SymmetricPowerBasis Get(int dim, int degree)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dim, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(degree, 1);
        long expanded = ExpandedDimOf(dim, degree);
        if (expanded * degree > Array.MaxLength)
        {
            throw new ArgumentOutOfRangeException(nameof(degree), $"The degree-{degree} embedding of {dim} dimensions has {expanded} features, more than this implementation indexes.");
        }

        return s_cache.GetOrAdd((dim, degree), key => new Lazy<SymmetricPowerBasis>(() => new SymmetricPowerBasis(key.Dim, key.Degree))).Value;
    }

    /// <summary>Returns C(d + p - 1, p), saturating at <see cref="long.MaxValue"/>.</summary>
    public static long ExpandedDimOf(int dim, int degree)
    {
        // C(n, k) built as a running product stays an integer at every step.
        long result = 1;
        for (int i = 1; i <= degree; i++)
        {
            long numerator = dim + i - 1;
            if (result > long.MaxValue / numerator)
            {
                return long.MaxValue;
            }

            result = result * numerator / i;
        }

        return result;
    }

    /// <summary>Computes phiQ(x) into <paramref name="features"/> (length D).</summary>
    public void EmbedQuery(ReadOnlySpan<float> x, Span<float> features) => Embed(x, features, withCoefficients: false);

    /// <summary>Computes phiK(x) into <paramref name="features"/> (length D).</summary>
    public void EmbedKey(ReadOnlySpan<float> x, Span<float> features) => Embed(x, features, withCoefficients: true);

    private void Embed(ReadOnlySpan<float> x, Span<float> features, bool withCoefficients)
    {
        int p = Degree;
        for (int f = 0; f < ExpandedDim; f++)
        {
            float product = withCoefficients ? KeyCoefficients[f] : 1f;
            int baseIndex = f * p;
            for (int r = 0; r < p; r++)
            {
                product *= x[Indices[baseIndex + r]];
            }

            features[f] = product;
        }
    }

    private void Fill()
    {
        int p = Degree;
        Span<int> current = stackalloc int[p];
        double factorialP = Factorial(p);
        for (int f = 0; f < ExpandedDim; f++)
        {
            current.CopyTo(Indices.AsSpan(f * p, p));

            // Multinomial coefficient: p! divided by the factorial of each run of equal indices.
            double denominator = 1;
            int run = 1;
            for (int r = 1; r <= p; r++)
            {
                if (r < p && current[r] == current[r - 1])
                {
                    run++;
                }
                else
                {
                    denominator *= Factorial(run);
                    run = 1;
                }
            }

            KeyCoefficients[f] = (float)(factorialP / denominator);
            Advance(current);
        }
    }

    // Steps to the next non-decreasing index tuple in lexicographic order.
    private void Advance(Span<int> current)
    {
        int p = current.Length;
        int position = p - 1;
        while (position >= 0 && current[position] == Dim - 1)
        {
            position--;
        }

        if (position < 0)
        {
            return;
        }

        int next = current[position] + 1;
        for (int r = position; r < p; r++)
        {
            current[r] = next;
        }
    }

    private static double Factorial(int n)
    {
        double result = 1;
        for (int i = 2; i <= n; i++)
        {
            result *= i;
        }

        return result;
    }
}
