using PowerRetention.Kernels;

namespace PowerRetention.Grains;

/// <summary>
/// The live decode state of a session. It never lets <see cref="DecodeState"/> fold its cache on its
/// own: before the token that would fold it, the runner takes the folded state as a new base and starts
/// a fresh decode state from it. So the live state always equals "base, then the cached tokens", which
/// is exactly what a session persists, and restoring it by replaying the cache gives the same outputs.
/// Not thread-safe.
/// </summary>
internal sealed class SessionRunner
{
    private DecodeState _decode;

    private SessionRunner(DecodeState decode)
    {
        _decode = decode;
    }

    /// <summary>True once a step changed the live state and until <see cref="Commit"/>; the owner then restores from its snapshot on failure.</summary>
    public bool Modified { get; private set; }

    /// <summary>Tokens in the live cache.</summary>
    public int CacheLength => _decode.CacheLength;

    /// <summary>Rebuilds the live state of a snapshot: its base, then its cached tokens replayed.</summary>
    public static SessionRunner Restore(SessionSnapshot snapshot)
    {
        DecodeState decode = snapshot.Config.CreateDecodeState(snapshot.Base);
        snapshot.Cache.Replay(snapshot.Config, decode);
        return new SessionRunner(decode);
    }

    /// <summary>Marks the live state as equal to the snapshot just committed.</summary>
    public void Commit() => Modified = false;

    /// <summary>Returns the state after every token so far, with the cache folded in.</summary>
    public RetentionState ExportState() => _decode.ToState();

    /// <summary>
    /// Validates a step's inputs, then applies them and returns the outputs and the snapshot that
    /// follows <paramref name="committed"/>. Invalid inputs throw before anything changes.
    /// </summary>
    /// <exception cref="ArgumentException">A shape does not match the session, or a value is NaN, infinite or a positive log-gate.</exception>
    public SessionStep Step(SessionSnapshot committed, Guid stepId, Tensor q, Tensor k, Tensor v, Tensor? logG)
    {
        SessionConfig config = committed.Config;
        CheckInputs(config, q, k, v, logG);

        Modified = true;
        int tokens = q.Dim(1);
        RetentionState? baseState = committed.Base;
        CachedTokens cache = committed.Cache;
        bool folded = false;
        Tensor output = Tensor.Zeros(q.DataType, config.Batch, tokens, config.QueryHeads, config.ValueDim);
        for (int done = 0; done < tokens;)
        {
            if (_decode.CacheLength == config.SwitchOverSeqLen)
            {
                baseState = _decode.ToState();
                _decode = config.CreateDecodeState(baseState);
                cache = CachedTokens.Empty;
                folded = true;
            }

            int run = Math.Min(tokens - done, config.SwitchOverSeqLen - _decode.CacheLength);
            if (run == tokens)
            {
                output = _decode.Step(q, k, v, logG);
            }
            else
            {
                Tensor y = _decode.Step(SliceTime(q, done, run), SliceTime(k, done, run), SliceTime(v, done, run), logG is null ? null : SliceTime(logG, done, run));
                PlaceTime(y, output, done);
            }

            cache = cache.Append(config, k, v, logG, done, done + run);
            done += run;
        }

        long position = committed.Position + tokens;
        var record = new StepRecord(stepId, position, RawTensor.FromTensor(output));
        SessionSnapshot next = committed with
        {
            Position = position,
            Base = baseState,
            BaseStorage = folded ? null : committed.BaseStorage,
            Cache = cache,
            LastStep = record,
            RecentSteps = committed.WithRecent(new StepMark(stepId, position)),
        };
        return new SessionStep(next, record.Output, folded ? baseState : null);
    }

    private static void CheckInputs(SessionConfig config, Tensor q, Tensor k, Tensor v, Tensor? logG)
    {
        RetentionProblem.CheckShapes(q, k, v, logG);
        if (q.Dim(0) != config.Batch || q.Dim(2) != config.QueryHeads || q.Dim(3) != config.KeyDim || k.Dim(2) != config.Heads || v.Dim(3) != config.ValueDim)
        {
            throw new ArgumentException(
                $"Step inputs Q {Tensor.FormatShape(q.Shape)}, K {Tensor.FormatShape(k.Shape)}, V {Tensor.FormatShape(v.Shape)} do not match the session: " +
                $"expected Q (b={config.Batch}, n, hq={config.QueryHeads}, d={config.KeyDim}), K (b, n, h={config.Heads}, d), V (b, n, h, e={config.ValueDim}).",
                "Q");
        }

        if (q.Dim(1) < 1)
        {
            throw new ArgumentException($"A step needs at least one token; Q has shape {Tensor.FormatShape(q.Shape)}.", "Q");
        }

        RetentionValidation.CheckFinite(q, "Q");
        RetentionValidation.CheckFinite(k, "K");
        RetentionValidation.CheckFinite(v, "V");
        if (logG is not null)
        {
            RetentionValidation.CheckLogGates(logG, "log_G");
        }
    }

    // Copies tokens [start, start + count) of a (b, n, ...) tensor into a new tensor of the same data type.
    private static Tensor SliceTime(Tensor tensor, int start, int count)
    {
        int[] shape = tensor.Shape.ToArray();
        int time = shape[1];
        shape[1] = count;
        Tensor slice = Tensor.Zeros(tensor.DataType, shape);
        long row = tensor.ElementCount / ((long)shape[0] * time);
        var buffer = new float[count * row];
        for (int batch = 0; batch < shape[0]; batch++)
        {
            tensor.Storage.Read((((long)batch * time) + start) * row, buffer);
            slice.Storage.Write((long)batch * count * row, buffer);
        }

        return slice;
    }

    // Writes a (b, m, ...) tensor into tokens [start, start + m) of a (b, n, ...) tensor.
    private static void PlaceTime(Tensor part, Tensor whole, int start)
    {
        int count = part.Dim(1), time = whole.Dim(1);
        long row = part.ElementCount / ((long)part.Dim(0) * count);
        var buffer = new float[count * row];
        for (int batch = 0; batch < part.Dim(0); batch++)
        {
            part.Storage.Read((long)batch * count * row, buffer);
            whole.Storage.Write((((long)batch * time) + start) * row, buffer);
        }
    }
}

/// <summary>What a step produced: the next snapshot, the outputs, and the new base when the cache was folded.</summary>
/// <param name="Next">The snapshot after the step; its <see cref="SessionSnapshot.BaseStorage"/> is null when <paramref name="NewBase"/> is set, until the base is encoded.</param>
/// <param name="Output">Y, (b, n, hq, e).</param>
/// <param name="NewBase">The state the cache was last folded into during this step, or null.</param>
/// <param name="BaseBytes">State file bytes of <paramref name="NewBase"/> once encoded, or null.</param>
internal sealed record SessionStep(SessionSnapshot Next, RawTensor Output, RetentionState? NewBase, byte[]? BaseBytes = null);
