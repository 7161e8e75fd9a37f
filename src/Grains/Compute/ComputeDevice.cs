using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using PowerRetention.Kernels;

namespace PowerRetention.Grains;

/// <summary>Options of a silo's compute device.</summary>
public sealed class ComputeDeviceOptions
{
    /// <summary>Worker threads running kernels; 0 means one per core.</summary>
    public int Threads { get; set; }

    /// <summary>The kernels this device runs; null means the CPU backend.</summary>
    public IComputeBackend? Backend { get; set; }
}

/// <summary>
/// A hook run on a device thread before each work item, for tests that need to hold work on one silo.
/// </summary>
public interface IComputeGate
{
    /// <summary>Returns when the work item may start.</summary>
    void Enter(CancellationToken cancellationToken);
}

/// <summary>
/// The only place a silo runs kernels: a fixed set of dedicated threads fed by a queue, so heavy
/// compute never blocks the Orleans scheduler and concurrency stays bounded to the cores.
/// </summary>
public sealed partial class ComputeDevice : IDisposable
{
    private readonly BlockingCollection<WorkItem> _queue = [];
    private readonly Thread[] _threads;
    private readonly ILogger<ComputeDevice> _logger;
    private readonly IComputeGate? _gate;
    private int _running;

    /// <summary>Starts the worker threads.</summary>
    public ComputeDevice(IOptions<ComputeDeviceOptions> options, ILogger<ComputeDevice> logger, IServiceProvider services)
    {
        _logger = logger;
        _gate = (IComputeGate?)services.GetService(typeof(IComputeGate));
        Backend = options.Value.Backend ?? CpuBackend.Instance;
        int threads = options.Value.Threads > 0 ? options.Value.Threads : Environment.ProcessorCount;
        _threads = new Thread[threads];
        for (int i = 0; i < threads; i++)
        {
            _threads[i] = new Thread(Drain) { IsBackground = true, Name = $"powerret-compute-{i}" };
            _threads[i].Start();
        }

        LogStarted(threads, Backend.Name);
        RetentionTelemetry.AddDevice(this);
    }

    /// <summary>The kernels work items run.</summary>
    public IComputeBackend Backend { get; }

    /// <summary>Number of worker threads, the most work items that run at once.</summary>
    public int Concurrency => _threads.Length;

    /// <summary>Work items waiting for a thread.</summary>
    public int QueueLength => _queue.Count;

    /// <summary>Work items running now.</summary>
    public int Running => Volatile.Read(ref _running);

    /// <summary>Queues <paramref name="work"/> and completes with its result once a device thread has run it.</summary>
    public Task<T> RunAsync<T>(Func<CancellationToken, T> work, CancellationToken cancellationToken)
    {
        var completion = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        _queue.Add(new WorkItem(() =>
        {
            if (cancellationToken.IsCancellationRequested)
            {
                completion.TrySetCanceled(cancellationToken);
                return;
            }

            try
            {
                _gate?.Enter(cancellationToken);
                completion.TrySetResult(work(cancellationToken));
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                completion.TrySetCanceled(cancellationToken);
            }
            catch (Exception error)
            {
                completion.TrySetException(error);
            }
        }));
        return completion.Task;
    }

    /// <summary>Queues <paramref name="work"/> and completes once a device thread has run it.</summary>
    public Task RunAsync(Action<CancellationToken> work, CancellationToken cancellationToken) =>
        RunAsync(token =>
        {
            work(token);
            return true;
        }, cancellationToken);

    /// <summary>Stops accepting work; queued items still run, threads exit when the queue is empty.</summary>
    public void Dispose()
    {
        RetentionTelemetry.RemoveDevice(this);
        _queue.CompleteAdding();
    }

    private void Drain()
    {
        foreach (WorkItem item in _queue.GetConsumingEnumerable())
        {
            Interlocked.Increment(ref _running);
            try
            {
                item.Run();
            }
            finally
            {
                Interlocked.Decrement(ref _running);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Compute device started with {Threads} threads on the {Backend} backend")]
    private partial void LogStarted(int threads, string backend);

    private sealed record WorkItem(Action Run);
}
