using Orleans.Runtime.Messaging;
using PowerRetention.Grains;
using PowerRetention.Kernels;
using PowerRetention.Kernels.IO;

namespace PowerRetention.Client;

/// <summary>
/// A handle to a decode session that lives in the cluster. Steps are retried with the same step id
/// when the call fails on the way, for example while the session's silo is replaced, so a step is
/// never applied twice. Calls may come from several threads; the session applies them one at a time.
/// </summary>
public sealed class DecodeSession
{
    private readonly IDecodeSessionGrain _grain;
    private long _position;

    internal DecodeSession(IDecodeSessionGrain grain, DecodeSessionInfo info)
    {
        _grain = grain;
        Info = info;
        _position = info.Position;
    }

    /// <summary>The session's id.</summary>
    public string Id => Info.SessionId;

    /// <summary>Sizes and options as of the start or the last <see cref="GetInfoAsync"/>.</summary>
    public DecodeSessionInfo Info { get; private set; }

    /// <summary>Tokens in the session after the latest step this handle saw.</summary>
    public long Position => Interlocked.Read(ref _position);

    /// <summary>How long a step keeps retrying calls that failed on the way before giving up. Default 60 seconds.</summary>
    public TimeSpan RetryTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Appends tokens and returns their outputs.</summary>
    /// <param name="q">Queries, (b, n, hq, d).</param>
    /// <param name="k">Keys, (b, n, h, d), in the data type of <paramref name="q"/>.</param>
    /// <param name="v">Values, (b, n, h, e), in the data type of <paramref name="q"/>.</param>
    /// <param name="logG">Optional log-gates, (b, n, h), every value &lt;= 0.</param>
    /// <param name="stepId">The step's id; null picks a new one. Pass the same id to retry a step.</param>
    /// <param name="cancellationToken">Stops waiting; the step may still be applied.</param>
    /// <returns>Y, (b, n, hq, e), in the data type of <paramref name="q"/>.</returns>
    /// <exception cref="ArgumentException">An input does not match the session or contains NaN, infinity or a positive log-gate; the session is unchanged.</exception>
    /// <exception cref="InvalidOperationException">The session does not exist, or the step failed in the cluster; the session is unchanged.</exception>
    public async Task<Tensor> StepAsync(Tensor q, Tensor k, Tensor v, Tensor? logG = null, Guid? stepId = null, CancellationToken cancellationToken = default)
    {
        var request = new DecodeStepRequest(
            stepId ?? Guid.NewGuid(),
            RawTensor.FromTensor(q),
            RawTensor.FromTensor(k),
            RawTensor.FromTensor(v),
            logG is null ? null : RawTensor.FromTensor(logG));
        DecodeStepResult result = await StepAsync(request, cancellationToken);
        return result.Output.ToTensor("Y");
    }

    /// <summary>Appends n tokens given as float32 arrays in C order and returns their outputs.</summary>
    /// <param name="q">Queries, b x n x hq x d values.</param>
    /// <param name="k">Keys, b x n x h x d values.</param>
    /// <param name="v">Values, b x n x h x e values.</param>
    /// <param name="logG">Optional log-gates, b x n x h values.</param>
    /// <param name="stepId">The step's id; null picks a new one. Pass the same id to retry a step.</param>
    /// <param name="cancellationToken">Stops waiting; the step may still be applied.</param>
    /// <returns>Y, b x n x hq x e values.</returns>
    /// <exception cref="ArgumentException">An array's length is not a whole number of tokens, or the inputs are invalid.</exception>
    /// <exception cref="InvalidOperationException">The session does not exist, or the step failed in the cluster; the session is unchanged.</exception>
    public async Task<float[]> StepAsync(float[] q, float[] k, float[] v, float[]? logG = null, Guid? stepId = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(q);
        DecodeSessionInfo info = Info;
        int queryRow = info.Batch * info.QueryHeads * info.KeyDim;
        if (q.Length == 0 || q.Length % queryRow != 0)
        {
            throw new ArgumentException($"Q has {q.Length} values, not a positive multiple of b x hq x d = {info.Batch} x {info.QueryHeads} x {info.KeyDim} = {queryRow}.", nameof(q));
        }

        int tokens = q.Length / queryRow;
        Tensor output = await StepAsync(
            Tensor.FromArray(q, info.Batch, tokens, info.QueryHeads, info.KeyDim),
            ShapeTokens(k, nameof(k), tokens, info.Batch, info.Heads, info.KeyDim),
            ShapeTokens(v, nameof(v), tokens, info.Batch, info.Heads, info.ValueDim),
            logG is null ? null : ShapeTokens(logG, nameof(logG), tokens, info.Batch, info.Heads),
            stepId,
            cancellationToken);
        return output.ToSingleArray();
    }

    /// <summary>Sends one step, retrying with the same request while calls fail on the way.</summary>
    /// <exception cref="ArgumentException">An input does not match the session or is invalid; the session is unchanged.</exception>
    /// <exception cref="InvalidOperationException">The session does not exist, or the step failed in the cluster; the session is unchanged.</exception>
    /// <exception cref="RetentionJobException">The cluster could not be reached within <see cref="RetryTimeout"/>.</exception>
    public async Task<DecodeStepResult> StepAsync(DecodeStepRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        DateTime deadline = DateTime.UtcNow + RetryTimeout;
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                DecodeStepResult result = await _grain.StepAsync(request).WaitAsync(cancellationToken);
                UpdatePosition(result.Position);
                return result;
            }
            catch (Exception error) when (IsTransient(error))
            {
                if (DateTime.UtcNow >= deadline)
                {
                    throw new RetentionJobException($"Step {request.StepId} of session '{Id}' could not reach the cluster in {RetryTimeout.TotalSeconds:F0} s ({attempt} attempts); last error: {error.Message}", error);
                }

                // Backs off to at most one second between attempts while membership replaces a dead silo.
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(1000, 50 * attempt)), cancellationToken);
            }
        }
    }

    /// <summary>Returns the state after every token so far, with the cache folded in.</summary>
    /// <exception cref="InvalidOperationException">The session does not exist, or its state is too large for one message.</exception>
    public async Task<RetentionState> ExportAsync(CancellationToken cancellationToken = default)
    {
        byte[] bytes = await _grain.ExportAsync().WaitAsync(cancellationToken);
        return StateFile.Deserialize(bytes, $"export of session '{Id}'");
    }

    /// <summary>Writes the state after every token so far to a state file, which appears under <paramref name="path"/> only once complete.</summary>
    /// <exception cref="InvalidOperationException">The session does not exist, or its state is too large for one message.</exception>
    public async Task ExportAsync(string path, CancellationToken cancellationToken = default)
    {
        byte[] bytes = await _grain.ExportAsync().WaitAsync(cancellationToken);
        string full = Path.GetFullPath(path);
        string partial = full + ".partial";
        await File.WriteAllBytesAsync(partial, bytes, cancellationToken);
        File.Move(partial, full, overwrite: true);
    }

    /// <summary>Reads the session's current sizes and position from the cluster.</summary>
    /// <exception cref="InvalidOperationException">The session no longer exists.</exception>
    public async Task<DecodeSessionInfo> GetInfoAsync(CancellationToken cancellationToken = default)
    {
        DecodeSessionInfo info = await _grain.GetInfoAsync().WaitAsync(cancellationToken)
            ?? throw new InvalidOperationException($"Decode session '{Id}' not found. It may have been dropped.");
        Info = info;
        UpdatePosition(info.Position);
        return info;
    }

    /// <summary>Deletes the session from the cluster's storage.</summary>
    public Task DropAsync(CancellationToken cancellationToken = default) => _grain.DropAsync().WaitAsync(cancellationToken);

    private static bool IsTransient(Exception error) =>
        error is SiloUnavailableException or OrleansMessageRejectionException or ConnectionFailedException or GatewayTooBusyException or TimeoutException;

    private static Tensor ShapeTokens(float[] values, string name, int tokens, params int[] dims)
    {
        ArgumentNullException.ThrowIfNull(values, name);
        int[] shape = [dims[0], tokens, .. dims[1..]];
        long expected = Tensor.ElementCountOf(shape);
        if (values.LongLength != expected)
        {
            throw new ArgumentException($"{name} has {values.LongLength} values, but {Tensor.FormatShape(shape)} needs {expected}.", name);
        }

        return Tensor.FromArray(values, shape);
    }

    private void UpdatePosition(long position)
    {
        long seen = Interlocked.Read(ref _position);
        while (position > seen)
        {
            long previous = Interlocked.CompareExchange(ref _position, position, seen);
            if (previous == seen)
            {
                return;
            }

            seen = previous;
        }
    }
}
