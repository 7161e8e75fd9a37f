using PowerRetention.Client;
using PowerRetention.Kernels;

namespace PowerRetention.Cli;

/// <summary>Where <c>powerret run</c> computes.</summary>
internal enum RunBackend
{
    /// <summary>A one-silo Orleans cluster started inside this process.</summary>
    Embedded,

    /// <summary>A running cluster reached through the gateways of --cluster.</summary>
    Cluster,

    /// <summary>This process's cores through <see cref="Retention.Compute"/>, without Orleans.</summary>
    Local,
}

/// <summary>The parsed options of a run.</summary>
/// <param name="OutputPath">The --out file.</param>
/// <param name="InitialStatePath">The --initial-state file, or null.</param>
/// <param name="FinalStatePath">The --final-state file, or null.</param>
/// <param name="Options">Kernel options; MaxDegreeOfParallelism is --threads.</param>
/// <param name="Backend">Where to compute.</param>
/// <param name="Gateways">Gateway addresses of --cluster, or null unless <paramref name="Backend"/> is <see cref="RunBackend.Cluster"/>.</param>
/// <param name="ClusterId">Cluster id of the --cluster silos.</param>
/// <param name="ServiceId">Service id of the --cluster silos.</param>
/// <param name="ConnectTimeout">Time to wait for a --cluster gateway.</param>
/// <param name="SegmentTokens">Tokens per segment on a cluster; 0 lets the coordinator choose.</param>
internal sealed record RunSettings(
    string OutputPath,
    string? InitialStatePath,
    string? FinalStatePath,
    RetentionOptions Options,
    RunBackend Backend,
    IReadOnlyList<string>? Gateways,
    string ClusterId,
    string ServiceId,
    TimeSpan ConnectTimeout,
    int SegmentTokens)
{
    /// <summary>Whether the chunk size in <see cref="Options"/> was picked by the library rather than given.</summary>
    public bool AutomaticChunkSize { get; init; }

    /// <summary>Kernels of a local run: auto, cpu or cuda.</summary>
    public string Device { get; init; } = "cpu";

    /// <summary>Default of --connect-timeout, in seconds.</summary>
    public const float DefaultConnectTimeoutSeconds = 15;

    /// <summary>Reads and checks the options of a run; the input files are opened later.</summary>
    /// <exception cref="UsageException">An option is missing, invalid or conflicts with another.</exception>
    public static RunSettings From(ParsedOptions options)
    {
        string output = options.GetRequiredString("--out");
        OutputFile.IsSafetensors(output);
        int degree = options.GetInt("--deg", 2, minimum: int.MinValue);
        if (degree < 2 || degree % 2 != 0)
        {
            throw options.Error($"invalid value {degree} for --deg: the degree must be even and at least 2");
        }

        string? finalState = options.GetString("--final-state");
        var retentionOptions = new RetentionOptions
        {
            Degree = degree,
            ChunkSize = options.GetOptionalInt("--chunk-size", minimum: 0),
            Scale = options.GetOptionalPositiveFloat("--scale"),
            SwitchOverSeqLen = options.GetOptionalInt("--switch-over", minimum: 0),
            MaxDegreeOfParallelism = options.GetOptionalInt("--threads", minimum: 1),
            ReturnFinalState = finalState is not null,
        };

        RunBackend backend = ParseBackend(options);
        IReadOnlyList<string>? gateways = backend == RunBackend.Cluster ? ParseGateways(options) : null;
        int segmentTokens = options.GetInt("--segment-tokens", 0, minimum: 0);
        if (backend == RunBackend.Local && options.Has("--segment-tokens"))
        {
            throw options.Error("--segment-tokens applies to cluster runs; a --local run has no segments");
        }

        if (backend == RunBackend.Cluster && options.Has("--threads"))
        {
            throw options.Error("--threads sets the threads of --local or of the embedded silo; the silos of --cluster set their own (powerret silo --threads)");
        }

        foreach (string clusterOption in new[] { "--cluster-id", "--service-id", "--connect-timeout" })
        {
            if (backend != RunBackend.Cluster && options.Has(clusterOption))
            {
                throw options.Error($"{clusterOption} applies only with --cluster");
            }
        }

        TimeSpan connectTimeout = TimeSpan.FromSeconds(options.GetOptionalPositiveFloat("--connect-timeout") ?? DefaultConnectTimeoutSeconds);
        string device = (options.GetString("--device") ?? "cpu").ToLowerInvariant();
        if (device is not ("auto" or "cpu" or "cuda"))
        {
            throw options.Error($"invalid value '{device}' for --device: expected auto, cpu or cuda");
        }

        if (backend != RunBackend.Local && options.Has("--device"))
        {
            throw options.Error("--device applies to --local runs; silos choose their kernels with 'powerret silo --device'");
        }

        return new RunSettings(
            output,
            options.GetString("--initial-state"),
            finalState,
            retentionOptions,
            backend,
            gateways,
            options.GetString("--cluster-id") ?? RetentionClient.DefaultClusterId,
            options.GetString("--service-id") ?? RetentionClient.DefaultServiceId,
            connectTimeout,
            segmentTokens)
        {
            Device = device,
        };
    }

    /// <summary>
    /// Returns the job options of a cluster run over t tokens. A sequence shorter than --switch-over runs as one
    /// segment of one chunk (the quadratic form over the whole sequence) unless --segment-tokens sets the segments.
    /// </summary>
    public ProcessingOptions ToProcessingOptions(int time)
    {
        bool quadratic = Options.SwitchOverSeqLen is int switchOver && time < switchOver;
        return new ProcessingOptions
        {
            Degree = Options.Degree,
            Scale = Options.Scale,
            ChunkSize = quadratic ? 0 : Options.ChunkSize,
            SegmentTokens = quadratic && SegmentTokens == 0 ? Math.Max(1, time) : SegmentTokens,
            ReturnFinalState = Options.ReturnFinalState,
        };
    }

    private static RunBackend ParseBackend(ParsedOptions options)
    {
        string? name = options.GetString("--backend");
        RunBackend? named = name switch
        {
            null => null,
            "embedded" => RunBackend.Embedded,
            "cluster" => RunBackend.Cluster,
            "local" => RunBackend.Local,
            _ => throw options.Error($"invalid value '{name}' for --backend: expected embedded, cluster or local"),
        };

        if (options.HasFlag("--local"))
        {
            if (named is not null and not RunBackend.Local)
            {
                throw options.Error($"--local conflicts with --backend {name}");
            }

            named = RunBackend.Local;
        }

        bool hasGateways = options.Has("--cluster");
        if (hasGateways && named is RunBackend.Local or RunBackend.Embedded)
        {
            throw options.Error($"--cluster names a running cluster, which conflicts with {(options.HasFlag("--local") ? "--local" : $"--backend {name}")}");
        }

        if (named == RunBackend.Cluster && !hasGateways)
        {
            throw options.Error("--backend cluster needs the gateways: --cluster HOST:PORT[,HOST:PORT...]");
        }

        return named ?? (hasGateways ? RunBackend.Cluster : RunBackend.Embedded);
    }

    private static string[] ParseGateways(ParsedOptions options)
    {
        string text = options.GetRequiredString("--cluster");
        string[] gateways = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (gateways.Length == 0)
        {
            throw options.Error($"invalid value '{text}' for --cluster: expected HOST:PORT[,HOST:PORT...]");
        }

        return gateways;
    }
}
