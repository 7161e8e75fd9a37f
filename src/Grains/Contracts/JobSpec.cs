using PowerRetention.Kernels;

namespace PowerRetention.Grains;

/// <summary>Sizes and element type of a job's inputs, (b, t, hq, d) queries and (b, t, h, d|e) keys and values.</summary>
[GenerateSerializer, Immutable, Alias("powerret.JobShape")]
public sealed record JobShape(
    [property: Id(0)] int Batch,
    [property: Id(1)] int Time,
    [property: Id(2)] int QueryHeads,
    [property: Id(3)] int Heads,
    [property: Id(4)] int KeyDim,
    [property: Id(5)] int ValueDim,
    [property: Id(6)] DataType DataType,
    [property: Id(7)] bool Gated);

/// <summary>Where a job's inputs come from.</summary>
public enum InputKind
{
    /// <summary>Files every silo can read: .npy per tensor or one .safetensors holding q, k, v, log_g.</summary>
    Files,

    /// <summary>Raw byte blocks uploaded by the client to each segment worker.</summary>
    Streamed,
}

/// <summary>Input files; either the four .npy paths or one .safetensors path.</summary>
[GenerateSerializer, Immutable, Alias("powerret.InputFiles")]
public sealed record InputFiles(
    [property: Id(0)] string? Q,
    [property: Id(1)] string? K,
    [property: Id(2)] string? V,
    [property: Id(3)] string? LogG,
    [property: Id(4)] string? Safetensors);

/// <summary>Everything a job needs to run: inputs, output, options and the plan's segment size.</summary>
[GenerateSerializer, Immutable, Alias("powerret.JobSpec")]
public sealed record JobSpec
{
    /// <summary>Input sizes; for file inputs the coordinator checks them against the files.</summary>
    [Id(0)]
    public required JobShape Shape { get; init; }

    /// <summary>How inputs arrive.</summary>
    [Id(1)]
    public InputKind Input { get; init; }

    /// <summary>Input files when <see cref="Input"/> is <see cref="InputKind.Files"/>.</summary>
    [Id(2)]
    public InputFiles? Files { get; init; }

    /// <summary>Output file (.npy or .safetensors) written in place by the workers; null streams the output back.</summary>
    [Id(3)]
    public string? OutputPath { get; init; }

    /// <summary>Degree p.</summary>
    [Id(4)]
    public int Degree { get; init; } = 2;

    /// <summary>Scale; null means 1/sqrt(d).</summary>
    [Id(5)]
    public float? Scale { get; init; }

    /// <summary>Tokens per chunk; 0 means one chunk per segment; null lets the coordinator pick the fastest size for the shape.</summary>
    [Id(6)]
    public int? ChunkSize { get; init; }

    /// <summary>Tokens per segment, a multiple of the chunk size; 0 lets the coordinator choose.</summary>
    [Id(7)]
    public int SegmentTokens { get; init; }

    /// <summary>Whether the coordinator keeps the final state for the client.</summary>
    [Id(8)]
    public bool ReturnFinalState { get; init; }

    /// <summary>Initial state in the state-file format, or null to start from zero.</summary>
    [Id(9)]
    public byte[]? InitialState { get; init; }
}
