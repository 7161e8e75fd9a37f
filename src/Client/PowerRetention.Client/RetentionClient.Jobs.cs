using System.Diagnostics;
using System.Runtime.InteropServices;
using PowerRetention.Grains;
using PowerRetention.Kernels;
using PowerRetention.Kernels.IO;

namespace PowerRetention.Client;

public sealed partial class RetentionClient
{
    // Streamed inputs and outputs move in blocks of this size; the upload keeps a few in flight at once.
    private const int TransferBlockBytes = 4 << 20;
    private const int ParallelUploads = 4;
    private const int MaxUploadAttempts = 12;

    /// <summary>
    /// Runs a job on tensors in memory: the inputs are checked here, streamed to the segment workers
    /// as raw byte blocks, and the output comes back in the inputs' data type.
    /// </summary>
    /// <exception cref="ArgumentException">An input is invalid (shape, NaN, positive gate, state mismatch); nothing was started.</exception>
    /// <exception cref="RetentionJobException">The job could not finish; the message says why.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; the job was cancelled in the cluster too.</exception>
    public async Task<JobResult> ProcessAsync(Tensor q, Tensor k, Tensor v, Tensor? logG = null, RetentionState? initialState = null, ProcessingOptions? options = null, IProgress<JobProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        options ??= new ProcessingOptions();
        // Validation only: any explicit chunk size checks the same inputs without timing candidate sizes.
        var kernelOptions = new RetentionOptions { Degree = options.Degree, Scale = options.Scale, ChunkSize = options.ChunkSize ?? RetentionOptions.DefaultChunkSize };
        RetentionProblem.Create(q, k, v, logG, initialState, kernelOptions);
        var shape = new JobShape(q.Dim(0), q.Dim(1), q.Dim(2), k.Dim(2), q.Dim(3), v.Dim(3), q.DataType, logG is not null);
        JobSpec spec = CreateSpec(options, initialState) with { Shape = shape, Input = InputKind.Streamed };

        IJobGrain job = Grains.GetGrain<IJobGrain>(options.JobId ?? Guid.NewGuid());
        using Activity? activity = RetentionTelemetry.StartJob(job.GetPrimaryKey(), InputKind.Streamed, shape);
        JobPlan plan = await StartAsync(job, spec);
        var output = Tensor.Zeros(q.DataType, shape.Batch, shape.Time, shape.QueryHeads, shape.ValueDim);
        var inputs = new Dictionary<string, Tensor>(StringComparer.Ordinal) { ["q"] = q, ["k"] = k, ["v"] = v };
        if (logG is not null)
        {
            inputs["log_g"] = logG;
        }

        using var uploads = new SemaphoreSlim(ParallelUploads);
        using var uploadCancellation = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var uploading = new Dictionary<int, Task>();
        var read = new HashSet<int>();
        var uploadAttempts = new Dictionary<int, int>();
        try
        {
            JobStatus status = await WaitAsync(job, options, progress, async current =>
            {
                // The coordinator lists segments as they enter its window, and again when a worker lost
                // its inputs; finished ones have output to read.
                foreach (int segment in current.SegmentsNeedingInput)
                {
                    if (!uploading.TryGetValue(segment, out Task? task))
                    {
                        uploading[segment] = UploadSegmentAsync(job, plan, shape, segment, inputs, uploads, attempt: 0, uploadCancellation.Token);
                    }
                    else if (task.IsCompleted)
                    {
                        await task;
                        uploadAttempts[segment] = uploadAttempts.GetValueOrDefault(segment) + 1;
                        if (uploadAttempts[segment] > MaxUploadAttempts)
                        {
                            throw new RetentionJobException($"Job {plan.JobId}: the inputs of segment {segment} could not be delivered in {MaxUploadAttempts} attempts.");
                        }

                        uploading[segment] = UploadSegmentAsync(job, plan, shape, segment, inputs, uploads, uploadAttempts[segment], uploadCancellation.Token);
                    }
                }

                foreach (int segment in current.SegmentsWithOutput)
                {
                    if (read.Contains(segment))
                    {
                        continue;
                    }

                    try
                    {
                        await DownloadSegmentAsync(job, plan, shape, segment, output, cancellationToken);
                    }
                    catch (Exception error) when (error is not OperationCanceledException and not RetentionJobException)
                    {
                        // The worker was lost before its output was read; the coordinator recomputes the
                        // segment and lists it again.
                        continue;
                    }

                    read.Add(segment);
                    await job.OutputReadAsync(segment);
                }

                return current.State == JobState.Completed && read.Count == plan.SegmentCount;
            }, cancellationToken);

            // Every segment is done, so every input arrived; what is left are pauses after failed attempts.
            await uploadCancellation.CancelAsync();
            RetentionState? finalState = options.ReturnFinalState ? await ReadFinalStateAsync(job, options.Degree) : null;
            return new JobResult(output, finalState, plan.JobId, plan.SegmentCount, plan.SegmentTokens, status.StateBytesMoved, status.SegmentRestarts);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await job.CancelAsync();
            throw;
        }
        catch (Exception error) when (RetentionTelemetry.MarkFailed(activity, error))
        {
            // Not reached: the filter marks the activity failed and returns false.
            throw;
        }
    }

    /// <summary>
    /// Runs a job on files every silo can read: workers memory-map their slices and write their rows
    /// of <paramref name="outputPath"/> (.npy or .safetensors tensor "y"), which appears under its
    /// name only when the whole job succeeded.
    /// </summary>
    /// <exception cref="ArgumentException">An input file, its shape or an option is invalid; nothing was started.</exception>
    /// <exception cref="RetentionJobException">The job could not finish (for example a NaN in an input); no output file is left.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; no output file is left.</exception>
    public async Task<JobResult> ProcessFilesAsync(InputFiles inputs, string outputPath, RetentionState? initialState = null, ProcessingOptions? options = null, IProgress<JobProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        options ??= new ProcessingOptions();
        JobSpec spec = CreateSpec(options, initialState) with
        {
            Input = InputKind.Files,
            Files = AbsolutePaths(inputs),
            OutputPath = Path.GetFullPath(outputPath),
        };

        IJobGrain job = Grains.GetGrain<IJobGrain>(options.JobId ?? Guid.NewGuid());
        using Activity? activity = RetentionTelemetry.StartJob(job.GetPrimaryKey(), InputKind.Files, shape: null);
        JobPlan plan = await StartAsync(job, spec);
        try
        {
            JobStatus status = await WaitAsync(job, options, progress, current => Task.FromResult(current.State == JobState.Completed), cancellationToken);
            RetentionState? finalState = options.ReturnFinalState ? await ReadFinalStateAsync(job, options.Degree) : null;
            return new JobResult(null, finalState, plan.JobId, plan.SegmentCount, plan.SegmentTokens, status.StateBytesMoved, status.SegmentRestarts);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await job.CancelAsync();
            throw;
        }
        catch (Exception error) when (RetentionTelemetry.MarkFailed(activity, error))
        {
            // Not reached: the filter marks the activity failed and returns false.
            throw;
        }
    }

    private static JobSpec CreateSpec(ProcessingOptions options, RetentionState? initialState) => new()
    {
        // File jobs take their shape from the files; the coordinator replaces this placeholder.
        Shape = new JobShape(1, 0, 1, 1, 1, 1, DataType.Float32, false),
        Degree = options.Degree,
        Scale = options.Scale,
        ChunkSize = options.ChunkSize,
        SegmentTokens = options.SegmentTokens,
        ReturnFinalState = options.ReturnFinalState,
        InitialState = initialState is null ? null : StateFile.Serialize(initialState),
    };

    private static InputFiles AbsolutePaths(InputFiles files)
    {
        static string? Full(string? path) => path is null ? null : Path.GetFullPath(path);
        return new InputFiles(Full(files.Q), Full(files.K), Full(files.V), Full(files.LogG), Full(files.Safetensors));
    }

    private static async Task<JobPlan> StartAsync(IJobGrain job, JobSpec spec)
    {
        try
        {
            return await job.StartAsync(spec);
        }
        catch (ArgumentException)
        {
            throw;
        }
        catch (Exception error) when (error is not OperationCanceledException)
        {
            throw new RetentionJobException($"The cluster could not start the job: {error.Message}", error);
        }
    }

    // Polls the job until onStatus returns true; throws when it failed or was cancelled elsewhere.
    private static async Task<JobStatus> WaitAsync(IJobGrain job, ProcessingOptions options, IProgress<JobProgress>? progress, Func<JobStatus, Task<bool>> onStatus, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(options.PollInterval);
        while (true)
        {
            JobStatus status;
            try
            {
                status = await job.GetStatusAsync();
            }
            catch (Exception error) when (error is not OperationCanceledException)
            {
                throw new RetentionJobException($"Lost contact with the coordinator of job {job.GetPrimaryKey()}: {error.Message}", error);
            }

            progress?.Report(new JobProgress(status.TokenHeadsDone, status.TokenHeadsTotal));
            if (status.State == JobState.Failed)
            {
                throw new RetentionJobException($"Job {status.JobId} failed: {status.Error}");
            }

            if (status.State == JobState.Cancelled)
            {
                throw new RetentionJobException($"Job {status.JobId} was cancelled.");
            }

            if (await onStatus(status))
            {
                return status;
            }

            await timer.WaitForNextTickAsync(cancellationToken);
        }
    }

    // Upload failures are left to the coordinator: the segment stays listed as needing input and is uploaded again.
    // Completes when the inputs are delivered, or after a pause that grows with the attempt when they were
    // not, so that the caller's next attempt waits for the cluster to notice a dead silo.
    private async Task UploadSegmentAsync(IJobGrain job, JobPlan plan, JobShape shape, int segment, Dictionary<string, Tensor> inputs, SemaphoreSlim uploads, int attempt, CancellationToken cancellationToken)
    {
        await uploads.WaitAsync(cancellationToken);
        try
        {
            await UploadSegmentInputsAsync(job, plan, shape, segment, inputs, cancellationToken);
            return;
        }
        catch (Exception error) when (error is OrleansException or TimeoutException or InvalidOperationException)
        {
            // A worker on a dying silo rejects calls, and its replacement has no assignment until the
            // coordinator restarts it.
        }
        finally
        {
            uploads.Release();
        }

        await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(200 * Math.Pow(2, attempt), 10_000)), cancellationToken);
    }

    private async Task UploadSegmentInputsAsync(IJobGrain job, JobPlan plan, JobShape shape, int segment, Dictionary<string, Tensor> inputs, CancellationToken cancellationToken)
    {
        ISegmentWorkerGrain worker = Grains.GetGrain<ISegmentWorkerGrain>($"{plan.JobId:N}/{segment}");
        int start = plan.SegmentStart(segment), end = plan.SegmentEnd(segment, shape.Time);
        foreach ((string name, Tensor tensor) in inputs)
        {
            long rowElements = tensor.ElementCount / ((long)shape.Batch * shape.Time);
            DataType type = name == "log_g" ? DataType.Float32 : shape.DataType;
            for (int batch = 0; batch < shape.Batch; batch++)
            {
                long first = (((long)batch * shape.Time) + start) * rowElements;
                long count = (long)(end - start) * rowElements;
                long blockElements = TransferBlockBytes / type.SizeInBytes();
                for (long done = 0; done < count; done += blockElements)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    int elements = (int)Math.Min(blockElements, count - done);
                    byte[] data = ReadBytes(tensor, type, first + done, elements);
                    await worker.UploadInputAsync(plan.JobId, new InputBlock(name, batch, done * type.SizeInBytes(), data));
                }
            }
        }

        await job.InputsUploadedAsync(segment);
    }

    private async Task DownloadSegmentAsync(IJobGrain job, JobPlan plan, JobShape shape, int segment, Tensor output, CancellationToken cancellationToken)
    {
        ISegmentWorkerGrain worker = Grains.GetGrain<ISegmentWorkerGrain>($"{plan.JobId:N}/{segment}");
        int start = plan.SegmentStart(segment), end = plan.SegmentEnd(segment, shape.Time);
        long rowElements = (long)shape.QueryHeads * shape.ValueDim;
        long elementsPerBatch = (end - start) * rowElements;
        int size = shape.DataType.SizeInBytes();
        long totalBytes = elementsPerBatch * shape.Batch * size;
        var floats = new float[TransferBlockBytes / size];
        for (long offset = 0; offset < totalBytes;)
        {
            cancellationToken.ThrowIfCancellationRequested();
            byte[] data = await worker.ReadOutputAsync(plan.JobId, offset, TransferBlockBytes);
            if (data.Length == 0)
            {
                throw new RetentionJobException($"Segment {segment} of job {plan.JobId} returned {offset} of {totalBytes} output bytes.");
            }

            // Segment rows are (b, segment length, hq, e); each batch entry lands at its place in (b, t, hq, e).
            long element = offset / size;
            int count = data.Length / size;
            Span<float> values = floats.AsSpan(0, count);
            ToSingles(shape.DataType, data, values);
            int written = 0;
            while (written < count)
            {
                long local = element + written;
                int batch = (int)(local / elementsPerBatch);
                long within = local % elementsPerBatch;
                int run = (int)Math.Min(count - written, elementsPerBatch - within);
                output.Storage.Write((((long)batch * shape.Time) + start) * rowElements + within, values.Slice(written, run));
                written += run;
            }

            offset += data.Length;
        }
    }

    private async Task<RetentionState> ReadFinalStateAsync(IJobGrain job, int degree)
    {
        int[] header = await job.GetFinalStateShapeAsync();
        int batch = header[0], keyDim = header[2], valueDim = header[3];
        int expanded = (int)SymmetricPowerBasis.ExpandedDimOf(keyDim, degree);
        var heads = new HeadState[batch * header[1]];
        for (int unit = 0; unit < heads.Length; unit++)
        {
            var values = new float[(long)expanded * valueDim];
            var normalizer = new float[expanded];
            foreach (float[] target in new[] { values, normalizer })
            {
                for (long offset = 0; offset < target.LongLength;)
                {
                    StateBlock block = await job.ReadFinalStateAsync(unit, ReferenceEquals(target, normalizer), offset, TransferBlockBytes / sizeof(float))
                        ?? throw new RetentionJobException($"Final state of job {job.GetPrimaryKey()} ended early at unit {unit}, offset {offset}.");
                    ReadOnlySpan<float> received = MemoryMarshal.Cast<byte, float>(block.Data);
                    received.CopyTo(target.AsSpan((int)offset));
                    offset += received.Length;
                }
            }

            heads[unit] = new HeadState(values, normalizer);
        }

        return new RetentionState(batch, header[1], keyDim, valueDim, degree, heads);
    }

    private static byte[] ReadBytes(Tensor tensor, DataType type, long first, int count)
    {
        var floats = new float[count];
        tensor.Storage.Read(first, floats);
        if (type == DataType.Float32)
        {
            return MemoryMarshal.AsBytes(floats.AsSpan()).ToArray();
        }

        var bits = new ushort[count];
        FloatConversion.FromSingle(type, floats, bits);
        return MemoryMarshal.AsBytes(bits.AsSpan()).ToArray();
    }

    private static void ToSingles(DataType type, byte[] data, Span<float> destination)
    {
        if (type == DataType.Float32)
        {
            MemoryMarshal.Cast<byte, float>(data).CopyTo(destination);
        }
        else
        {
            FloatConversion.ToSingle(type, MemoryMarshal.Cast<byte, ushort>(data), destination);
        }
    }
}
