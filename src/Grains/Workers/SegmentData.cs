using System.Runtime.InteropServices;
using PowerRetention.Kernels;
using PowerRetention.Kernels.IO;

namespace PowerRetention.Grains;

/// <summary>
/// The tensors one segment reads and writes: either whole memory-mapped files with the segment's
/// token range, or the segment's own slices (streamed inputs, in-memory output) with range [0, length).
/// </summary>
internal sealed class SegmentData : IDisposable
{
    private readonly List<IDisposable> _owned = [];

    private SegmentData()
    {
    }

    public required RetentionProblem Problem { get; init; }

    public required int Start { get; init; }

    public required int End { get; init; }

    /// <summary>Added to local token indices to name the token in the whole sequence.</summary>
    public required int TokenOffset { get; init; }

    public Tensor? Output { get; private set; }

    /// <summary>Opens file inputs; the problem spans the whole files and the range is the segment's.</summary>
    public static SegmentData OpenFiles(JobSpec spec, int chunkSize, int start, int end)
    {
        var owned = new List<IDisposable>();
        try
        {
            (Tensor q, Tensor k, Tensor v, Tensor? logG) = OpenInputFiles(spec.Files!, owned);
            RetentionProblem problem = CreateProblem(spec, q, k, v, logG, chunkSize);
            var data = new SegmentData { Problem = problem, Start = start, End = end, TokenOffset = 0 };
            data._owned.AddRange(owned);
            return data;
        }
        catch
        {
            owned.ForEach(item => item.Dispose());
            throw;
        }
    }

    /// <summary>Wraps streamed slices of (b, length, heads, dim) held by the worker.</summary>
    public static SegmentData FromSlices(JobSpec spec, int chunkSize, int start, int length, Tensor q, Tensor k, Tensor v, Tensor? logG)
    {
        RetentionProblem problem = CreateProblem(spec, q, k, v, logG, chunkSize);
        return new SegmentData { Problem = problem, Start = 0, End = length, TokenOffset = start };
    }

    /// <summary>Opens the job's output for writing: the shared output file or a new in-memory slice.</summary>
    public void OpenOutput(string? outputWritePath, JobShape shape)
    {
        if (outputWritePath is not null)
        {
            Output = TensorFiles.OpenWritable(outputWritePath);
            _owned.Add(Output);
        }
        else
        {
            Output = Tensor.Zeros(shape.DataType, shape.Batch, End - Start, shape.QueryHeads, shape.ValueDim);
        }
    }

    /// <summary>Opens the input files named by a job and returns q, k, v and log_g (null without gating).</summary>
    public static (Tensor Q, Tensor K, Tensor V, Tensor? LogG) OpenInputFiles(InputFiles files, List<IDisposable> owned)
    {
        if (files.Safetensors is not null)
        {
            SafetensorsReader reader = SafetensorsFile.Open(files.Safetensors);
            owned.Add(reader);
            Tensor Get(string name)
            {
                if (!reader.TryGetTensor(name, out Tensor? tensor))
                {
                    throw new ArgumentException($"{files.Safetensors}: no tensor named '{name}'; expected q, k, v and optionally log_g.", "input");
                }

                owned.Add(tensor);
                return tensor;
            }

            return (Get("q"), Get("k"), Get("v"), reader.Contains("log_g") ? Get("log_g") : null);
        }

        Tensor Open(string path)
        {
            Tensor tensor = NpyFile.Read(path);
            owned.Add(tensor);
            return tensor;
        }

        if (files.Q is null || files.K is null || files.V is null)
        {
            throw new ArgumentException("File inputs need q, k and v paths, or one .safetensors path.", "input");
        }

        return (Open(files.Q), Open(files.K), Open(files.V), files.LogG is null ? null : Open(files.LogG));
    }

    /// <summary>Returns the raw bytes of an in-memory tensor (float32 or 16-bit storage).</summary>
    public static ReadOnlySpan<byte> BytesOf(Tensor tensor) => tensor.Storage switch
    {
        SingleArrayStorage single => MemoryMarshal.AsBytes(single.Values.AsSpan()),
        HalfArrayStorage half => MemoryMarshal.AsBytes(half.Bits.AsSpan()),
        _ => throw new InvalidOperationException("Only in-memory tensors expose their bytes."),
    };

    /// <summary>Returns a tensor over a raw byte buffer of the given type (copied into typed storage).</summary>
    public static Tensor FromBytes(DataType dataType, byte[] bytes, int[] shape)
    {
        if (dataType == DataType.Float32)
        {
            return new Tensor(new SingleArrayStorage(MemoryMarshal.Cast<byte, float>(bytes).ToArray()), shape);
        }

        return new Tensor(new HalfArrayStorage(dataType, MemoryMarshal.Cast<byte, ushort>(bytes).ToArray()), shape);
    }

    public void Dispose()
    {
        foreach (IDisposable item in _owned)
        {
            item.Dispose();
        }

        _owned.Clear();
    }

    // The plan's chunk size: resolved by the coordinator, so every segment cuts chunks alike.
    private static RetentionProblem CreateProblem(JobSpec spec, Tensor q, Tensor k, Tensor v, Tensor? logG, int chunkSize)
    {
        var options = new RetentionOptions
        {
            Degree = spec.Degree,
            Scale = spec.Scale,
            ChunkSize = Math.Max(1, chunkSize),
        };
        return RetentionProblem.Create(q, k, v, logG, null, options, checkValues: false);
    }
}
