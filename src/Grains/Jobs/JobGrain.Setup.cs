using PowerRetention.Kernels;
using PowerRetention.Kernels.IO;

namespace PowerRetention.Grains;

internal sealed partial class JobGrain
{
    // Checks the spec before anything starts; for file inputs the shape comes from the files.
    private static JobShape Validate(JobSpec spec)
    {
        if (spec.ChunkSize < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(spec), spec.ChunkSize, $"Chunk size must be >= 0; got {spec.ChunkSize}.");
        }

        if (spec.SegmentTokens < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(spec), spec.SegmentTokens, $"Segment size must be >= 0 tokens; got {spec.SegmentTokens}.");
        }

        JobShape shape = spec.Shape;
        if (spec.Input == InputKind.Files)
        {
            if (spec.Files is null)
            {
                throw new ArgumentException("A file job needs input files.", nameof(spec));
            }

            var owned = new List<IDisposable>();
            try
            {
                (Tensor q, Tensor k, Tensor v, Tensor? logG) = SegmentData.OpenInputFiles(spec.Files, owned);
                RetentionProblem.CheckShapes(q, k, v, logG);
                shape = new JobShape(q.Dim(0), q.Dim(1), q.Dim(2), k.Dim(2), q.Dim(3), v.Dim(3), q.DataType, logG is not null);
            }
            finally
            {
                owned.ForEach(item => item.Dispose());
            }
        }
        else if (spec.Shape.Batch < 1 || spec.Shape.Time < 0 || spec.Shape.Heads < 1 || spec.Shape.QueryHeads % spec.Shape.Heads != 0 || spec.Shape.KeyDim < 1 || spec.Shape.ValueDim < 1)
        {
            throw new ArgumentException($"Invalid streamed input shape {spec.Shape}.", nameof(spec));
        }

        RetentionValidation.CheckDegree(spec.Degree);
        RetentionValidation.ResolveScale(spec.Scale, shape.KeyDim);
        long expanded = SymmetricPowerBasis.ExpandedDimOf(shape.KeyDim, spec.Degree);
        RetentionValidation.CheckStateFits(shape.Batch, shape.Heads, expanded, shape.ValueDim, "retention state");
        if (spec.InitialState is not null)
        {
            RetentionState initial = StateFile.Deserialize(spec.InitialState, "initial state");
            RetentionProblem.CheckState(initial, shape.Batch, shape.Heads, shape.KeyDim, shape.ValueDim, spec.Degree);
        }

        if (spec.OutputPath is not null)
        {
            if (!TensorFiles.IsNpy(spec.OutputPath) && !TensorFiles.IsSafetensors(spec.OutputPath))
            {
                throw new ArgumentException($"Output {spec.OutputPath} must end in .npy or .safetensors.", nameof(spec));
            }

            if (TensorFiles.IsNpy(spec.OutputPath) && shape.DataType == DataType.BFloat16)
            {
                throw new ArgumentException($"Output {spec.OutputPath}: .npy has no bfloat16 dtype; write a .safetensors file instead.", nameof(spec));
            }
        }

        return shape;
    }

    // Whole chunks per segment, enough segments to keep every silo busy, few enough that compute dwarfs moving a state.
    private async Task<JobPlan> PlanAsync(JobSpec spec, JobShape shape)
    {
        int silos = Math.Max(1, (await GrainFactory.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true)).Count);
        long expanded = SymmetricPowerBasis.ExpandedDimOf(shape.KeyDim, spec.Degree);
        int time = shape.Time;
        int segmentTokens = spec.SegmentTokens;
        // Timing candidate chunk sizes is compute, so it runs on the thread pool, not the grain's scheduler.
        int chunk = spec.ChunkSize ?? await Task.Run(() => ChunkSizeSelector.Choose(shape.KeyDim, shape.ValueDim, spec.Degree, shape.Gated, time));
        if (segmentTokens == 0)
        {
            long target = (time + ((long)silos * _options.SegmentsPerSilo) - 1) / ((long)silos * _options.SegmentsPerSilo);
            long floor = Math.Min(time, expanded * _options.MinSegmentTokensPerFeature);
            segmentTokens = (int)Math.Max(1, Math.Max(target, floor));
        }

        if (chunk == 0)
        {
            // One chunk per segment: the quadratic form inside each segment.
            chunk = segmentTokens;
        }

        segmentTokens = (int)Math.Min(int.MaxValue / 2, ((long)segmentTokens + chunk - 1) / chunk * chunk);
        int segments = time == 0 ? 0 : (int)(((long)time + segmentTokens - 1) / segmentTokens);
        return new JobPlan(JobId, chunk, segmentTokens, segments, silos);
    }

    // Creates the output under a temporary name; it gets its final name when every segment is done.
    private void CreateOutput(JobSpec spec, JobShape shape)
    {
        if (spec.OutputPath is null)
        {
            return;
        }

        int[] outputShape = [shape.Batch, shape.Time, shape.QueryHeads, shape.ValueDim];
        if (TensorFiles.IsSafetensors(spec.OutputPath))
        {
            SafetensorsPendingFile pending = SafetensorsFile.Create(spec.OutputPath, [("y", shape.DataType, outputShape)]);
            _pendingOutput = pending;
            _outputWritePath = pending.TemporaryPath;
            _commitOutput = pending.Commit;
        }
        else
        {
            PendingTensorFile pending = NpyFile.Create(spec.OutputPath, shape.DataType, outputShape);
            _pendingOutput = pending;
            _outputWritePath = pending.TemporaryPath;
            _commitOutput = pending.Commit;
        }
    }
}
