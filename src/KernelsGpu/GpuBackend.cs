using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace PowerRetention.Kernels.Gpu;

/// <summary>
/// The segment kernels of chunked retention on an ILGPU accelerator: a CUDA device, or ILGPU's CPU
/// accelerator, which runs the same kernels on the CPU for tests. Each call copies its chunks to
/// device buffers allocated for that call, keeps the state on the device for the whole segment and
/// copies it back at the end.
/// </summary>
/// <remarks>
/// Calls from several threads are safe but run one at a time, because they share one accelerator
/// stream. NOTE: concurrent calls would need a stream per call; the kernels do not need changes.
/// </remarks>
public sealed class GpuBackend : IComputeBackend, IDisposable
{
    private readonly Context _context;
    private readonly Accelerator _accelerator;
    private readonly KernelSet _kernels;
    private readonly Lock _lock = new();
    private readonly Dictionary<(int Dim, int Degree), BasisBuffers> _bases = [];
    private bool _disposed;

    private GpuBackend(Context context, Accelerator accelerator, bool tiledKernels)
    {
        _context = context;
        _accelerator = accelerator;
        _kernels = new KernelSet(accelerator, tiledKernels);
    }

    /// <inheritdoc />
    /// <remarks>"cuda" on a CUDA device, "ilgpu-cpu" on ILGPU's CPU accelerator.</remarks>
    public string Name => _accelerator.AcceleratorType == AcceleratorType.Cuda ? "cuda" : "ilgpu-cpu";

    /// <summary>Name of the device, as the driver reports it.</summary>
    public string DeviceName => _accelerator.Name;

    /// <summary>Device memory in bytes.</summary>
    public long MemoryBytes => _accelerator.MemorySize;

    /// <summary>Whether matrix products use the shared-memory tiled kernel (the default on CUDA).</summary>
    public bool TiledKernels => _kernels.Tiled;

    /// <summary>
    /// Creates a backend on ILGPU's CPU accelerator, which runs the device kernels on this machine's
    /// cores. It is slow (each kernel launch costs milliseconds) and meant for tests.
    /// </summary>
    /// <param name="tiledKernels">Use the shared-memory tiled matrix product, as on CUDA, instead of one thread per output.</param>
    public static GpuBackend CreateCpuAccelerator(bool tiledKernels = false)
    {
        Context context = Context.Create(builder => builder.CPU().EnableAlgorithms());
        try
        {
            Accelerator accelerator = CPUDevice.Default.CreateCPUAccelerator(context);
            return new GpuBackend(context, accelerator, tiledKernels);
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    /// <summary>Creates a backend on CUDA device <paramref name="deviceIndex"/>, compiling the kernels to PTX.</summary>
    /// <exception cref="InvalidOperationException">
    /// No usable CUDA device: the driver library is missing, the driver reports no device, or
    /// initialising the device or compiling the kernels failed. The message names the cause.
    /// </exception>
    public static GpuBackend CreateCuda(int deviceIndex = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(deviceIndex);
        CudaDriverStatus driver = CudaDriverProbe.Probe();
        if (!driver.IsUsable)
        {
            throw new InvalidOperationException($"The CUDA backend is unavailable: {driver.Detail}.");
        }

        if (deviceIndex >= driver.DeviceCount)
        {
            throw new InvalidOperationException($"The CUDA backend is unavailable: device {deviceIndex} was requested but the driver reports {driver.DeviceCount} device(s).");
        }

        Context context = Context.Create(builder => builder.Cuda().EnableAlgorithms());
        try
        {
            Context.DeviceCollection<CudaDevice> devices = context.GetCudaDevices();
            if (deviceIndex >= devices.Count)
            {
                throw new InvalidOperationException($"The CUDA backend is unavailable: the driver reports {driver.DeviceCount} device(s) but ILGPU could use {devices.Count}; the device's compute capability or the driver version may be unsupported by ILGPU 1.5.3.");
            }

            CudaAccelerator accelerator = devices[deviceIndex].CreateCudaAccelerator(context);
            try
            {
                return new GpuBackend(context, accelerator, tiledKernels: true);
            }
            catch
            {
                accelerator.Dispose();
                throw;
            }
        }
        catch (Exception error) when (error is not InvalidOperationException)
        {
            context.Dispose();
            throw new InvalidOperationException($"The CUDA backend is unavailable: initialising CUDA device {deviceIndex} failed: {error.Message}", error);
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public void RunDirect(RetentionProblem problem, int batch, int kvHead, int start, int end, HeadState state, Tensor output, bool advanceState, Action<int>? onChunkDone, CancellationToken cancellationToken)
    {
        CheckUnit(problem, batch, kvHead, start, end);
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(output);
        CheckState(problem, state);
        if (start == end)
        {
            return;
        }

        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _accelerator.Bind();
            using var segment = new GpuSegment(problem, _kernels, GetBasis(problem.Basis), withOutputs: true);
            segment.LoadState(state);
            int chunk = problem.ChunkSize;
            for (int position = start; position < end; position += chunk)
            {
                cancellationToken.ThrowIfCancellationRequested();
                int length = Math.Min(chunk, end - position);
                bool last = position + length >= end;
                segment.ProcessChunk(batch, kvHead, position, length, withOutputs: true, updateState: advanceState || !last);
                segment.WriteNormalized(output, batch, kvHead, position, length);
                onChunkDone?.Invoke(length);
            }

            if (advanceState)
            {
                // state = 0 * state + device state: copies in place and clears the state's IsZero flag.
                state.DecayAndAdd(0f, segment.DownloadState());
            }
        }
    }

    /// <inheritdoc />
    public SegmentSummary RunSummaryOnly(RetentionProblem problem, int batch, int kvHead, int start, int end, CancellationToken cancellationToken)
    {
        CheckUnit(problem, batch, kvHead, start, end);
        if (start == end)
        {
            return new SegmentSummary(0, new HeadState(problem.ExpandedDim, problem.ValueDim));
        }

        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _accelerator.Bind();
            using var segment = new GpuSegment(problem, _kernels, GetBasis(problem.Basis), withOutputs: false);
            segment.LoadState(new HeadState(problem.ExpandedDim, problem.ValueDim));
            double logDecay = 0;
            int chunk = problem.ChunkSize;
            for (int position = start; position < end; position += chunk)
            {
                cancellationToken.ThrowIfCancellationRequested();
                int length = Math.Min(chunk, end - position);
                logDecay += segment.ProcessChunk(batch, kvHead, position, length, withOutputs: false, updateState: true);
            }

            return new SegmentSummary(logDecay, segment.DownloadState());
        }
    }

    /// <summary>Releases the device buffers, the accelerator and the ILGPU context.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            foreach (BasisBuffers basis in _bases.Values)
            {
                basis.Dispose();
            }

            _bases.Clear();
            _accelerator.Dispose();
            _context.Dispose();
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"{Name} ({DeviceName}, {MemoryBytes / (1024 * 1024)} MiB)";

    // The tables are the same for every call with the same (d, p), so they go to the device once.
    private BasisBuffers GetBasis(SymmetricPowerBasis basis)
    {
        if (!_bases.TryGetValue((basis.Dim, basis.Degree), out BasisBuffers? buffers))
        {
            buffers = BasisBuffers.Upload(_accelerator, basis);
            _bases.Add((basis.Dim, basis.Degree), buffers);
        }

        return buffers;
    }

    private static void CheckUnit(RetentionProblem problem, int batch, int kvHead, int start, int end)
    {
        ArgumentNullException.ThrowIfNull(problem);
        ArgumentOutOfRangeException.ThrowIfNegative(batch);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(batch, problem.Batch);
        ArgumentOutOfRangeException.ThrowIfNegative(kvHead);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(kvHead, problem.Heads);
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        ArgumentOutOfRangeException.ThrowIfLessThan(end, start);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(end, problem.Time);
    }

    private static void CheckState(RetentionProblem problem, HeadState state)
    {
        if (state.Normalizer.Length != problem.ExpandedDim || state.Values.LongLength != (long)problem.ExpandedDim * problem.ValueDim)
        {
            throw new ArgumentException($"State has D={state.Normalizer.Length} and {state.Values.LongLength} values; the problem needs D={problem.ExpandedDim} and {(long)problem.ExpandedDim * problem.ValueDim} values.", nameof(state));
        }
    }
}
