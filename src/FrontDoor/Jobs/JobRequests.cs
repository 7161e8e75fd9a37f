using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using PowerRetention.Client;
using PowerRetention.Grains;
using PowerRetention.Kernels;

namespace PowerRetention.FrontDoor.Jobs;

/// <summary>
/// Body of <c>POST /jobs/files</c>: paths every silo can read, as absolute paths, and the job's options.
/// Either <see cref="Safetensors"/> (tensors q, k, v, log_g) or the .npy paths <see cref="Q"/>, <see cref="K"/>,
/// <see cref="V"/> and optionally <see cref="LogG"/>.
/// </summary>
public sealed record FileJobRequest
{
    /// <summary>Queries (.npy), (b, t, hq, d).</summary>
    public string? Q { get; init; }

    /// <summary>Keys (.npy), (b, t, h, d).</summary>
    public string? K { get; init; }

    /// <summary>Values (.npy), (b, t, h, e).</summary>
    public string? V { get; init; }

    /// <summary>Log-gates (.npy), (b, t, h); optional.</summary>
    public string? LogG { get; init; }

    /// <summary>One .safetensors file with tensors q, k, v and optionally log_g, in place of the .npy paths.</summary>
    public string? Safetensors { get; init; }

    /// <summary>Output file, .npy or .safetensors (tensor y), written by the silos; required.</summary>
    public string? Out { get; init; }

    /// <summary>Degree p; default 2.</summary>
    public int? Deg { get; init; }

    /// <summary>Tokens per chunk; default 1024, 0 for the quadratic form.</summary>
    public int? ChunkSize { get; init; }

    /// <summary>Scale; null means 1/sqrt(d).</summary>
    public float? Scale { get; init; }

    /// <summary>Whether to keep the final state for <c>GET /jobs/{id}/state</c>; default false.</summary>
    public bool? FinalState { get; init; }
}

/// <summary>A job as <c>GET /jobs/{id}</c> reports it.</summary>
/// <param name="Id">The job id.</param>
/// <param name="Kind">"upload" for <c>POST /jobs</c>, "files" for <c>POST /jobs/files</c>.</param>
/// <param name="State">Running, completed, failed or cancelled.</param>
/// <param name="Progress">Fraction of output rows done, 0 to 1.</param>
/// <param name="TokenHeadsDone">Output rows (token x query head x batch entry) done.</param>
/// <param name="TokenHeadsTotal">All output rows; 0 until the cluster planned the job.</param>
/// <param name="Error">Why the job failed or that it was cancelled; null otherwise.</param>
/// <param name="CreatedAt">When the front door accepted the job.</param>
/// <param name="FinishedAt">When it finished; null while it runs.</param>
/// <param name="Output">Path of the output resource once the job completed.</param>
/// <param name="FinalState">Path of the final-state resource once the job completed, when requested.</param>
public sealed record JobStatusResponse(
    Guid Id,
    string Kind,
    FrontDoorJobState State,
    double Progress,
    long TokenHeadsDone,
    long TokenHeadsTotal,
    string? Error,
    DateTimeOffset CreatedAt,
    DateTimeOffset? FinishedAt,
    string? Output,
    string? FinalState);

/// <summary>Parses job options from query parameters and from <see cref="FileJobRequest"/> bodies.</summary>
internal static class JobRequests
{
    public const string DegreeParameter = "deg";
    public const string ChunkSizeParameter = "chunk_size";
    public const string ScaleParameter = "scale";
    public const string FinalStateParameter = "final_state";

    private static readonly string[] s_parameters = [DegreeParameter, ChunkSizeParameter, ScaleParameter, FinalStateParameter];

    /// <summary>Reads <c>deg</c>, <c>chunk_size</c>, <c>scale</c> and <c>final_state</c>; the cluster checks their ranges.</summary>
    /// <exception cref="RequestException">A parameter is unknown, repeated or not a number (400).</exception>
    public static ProcessingOptions FromQuery(IQueryCollection query)
    {
        foreach (string name in query.Keys)
        {
            if (!s_parameters.Contains(name, StringComparer.Ordinal))
            {
                throw RequestException.BadRequest($"Unknown query parameter '{name}'. Known parameters: {string.Join(", ", s_parameters)}.");
            }

            if (query[name].Count > 1)
            {
                throw RequestException.BadRequest($"Query parameter '{name}' is given {query[name].Count} times; give it once.");
            }
        }

        return new ProcessingOptions
        {
            Degree = ParseInt(query, DegreeParameter, 2),
            ChunkSize = ParseInt(query, ChunkSizeParameter, RetentionOptions.DefaultChunkSize),
            Scale = ParseScale(query),
            ReturnFinalState = ParseBool(query, FinalStateParameter),
        };
    }

    /// <summary>Reads a <see cref="FileJobRequest"/> body and checks that its paths are complete and absolute.</summary>
    /// <exception cref="RequestException">The body is not such JSON, or a path is missing, relative or of the wrong kind (400).</exception>
    public static async Task<(InputFiles Files, string Output, ProcessingOptions Options)> ReadFileJobAsync(HttpRequest request, long maxBytes, JsonSerializerOptions json, CancellationToken cancellationToken)
    {
        if (request.ContentLength > maxBytes)
        {
            throw RequestException.TooLarge(maxBytes);
        }

        FileJobRequest? body;
        try
        {
            var strict = new JsonSerializerOptions(json) { UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow };
            using var limited = new MemoryStream();
            await CopyLimitedAsync(request.Body, limited, maxBytes, cancellationToken);
            limited.Position = 0;
            body = await JsonSerializer.DeserializeAsync<FileJobRequest>(limited, strict, cancellationToken);
        }
        catch (JsonException error)
        {
            throw RequestException.BadRequest($"The request body is not a valid file-job JSON object: {error.Message}");
        }

        if (body is null)
        {
            throw RequestException.BadRequest("The request body is empty; send a JSON object with \"out\" and either \"safetensors\" or \"q\", \"k\" and \"v\".");
        }

        InputFiles files = CheckInputs(body);
        string output = CheckPath(body.Out, "out") ?? throw RequestException.BadRequest("\"out\" is missing: give the absolute path of the output file (.npy or .safetensors) the silos write.");
        if (!output.EndsWith(".npy", StringComparison.OrdinalIgnoreCase) && !output.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            throw RequestException.BadRequest($"\"out\" is '{output}': the output file must end in .npy or .safetensors.");
        }

        var options = new ProcessingOptions
        {
            Degree = body.Deg ?? 2,
            ChunkSize = body.ChunkSize ?? RetentionOptions.DefaultChunkSize,
            Scale = body.Scale,
            ReturnFinalState = body.FinalState ?? false,
        };
        return (files, output, options);
    }

    private static InputFiles CheckInputs(FileJobRequest body)
    {
        string? safetensors = CheckPath(body.Safetensors, "safetensors");
        string? q = CheckPath(body.Q, "q"), k = CheckPath(body.K, "k"), v = CheckPath(body.V, "v"), logG = CheckPath(body.LogG, "log_g");
        if (safetensors is not null)
        {
            if (q is not null || k is not null || v is not null || logG is not null)
            {
                throw RequestException.BadRequest("Give either \"safetensors\" or the .npy paths \"q\", \"k\", \"v\" (and \"log_g\"), not both.");
            }

            return new InputFiles(null, null, null, null, safetensors);
        }

        if (q is null || k is null || v is null)
        {
            string missing = string.Join(", ", new[] { ("q", q), ("k", k), ("v", v) }.Where(p => p.Item2 is null).Select(p => $"\"{p.Item1}\""));
            throw RequestException.BadRequest($"Input paths are missing: {missing}. Give \"q\", \"k\" and \"v\" (and optionally \"log_g\") as .npy paths, or one \"safetensors\" path.");
        }

        return new InputFiles(q, k, v, logG, null);
    }

    private static string? CheckPath(string? path, string name)
    {
        if (path is null)
        {
            return null;
        }

        if (!Path.IsPathFullyQualified(path))
        {
            throw RequestException.BadRequest($"\"{name}\" is '{path}': give an absolute path that every silo can read.");
        }

        return path;
    }

    private static async Task CopyLimitedAsync(Stream body, Stream destination, long maxBytes, CancellationToken cancellationToken)
    {
        byte[] buffer = new byte[81920];
        long total = 0;
        int read;
        while ((read = await body.ReadAsync(buffer, cancellationToken)) > 0)
        {
            total += read;
            if (total > maxBytes)
            {
                throw RequestException.TooLarge(maxBytes);
            }

            await destination.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
        }
    }

    private static int ParseInt(IQueryCollection query, string name, int defaultValue)
    {
        string? text = query[name];
        if (text is null)
        {
            return defaultValue;
        }

        return int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int value)
            ? value
            : throw RequestException.BadRequest($"Query parameter '{name}' must be an integer; got '{text}'.");
    }

    private static float? ParseScale(IQueryCollection query)
    {
        string? text = query[ScaleParameter];
        if (string.IsNullOrEmpty(text))
        {
            return null;
        }

        return float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out float value)
            ? value
            : throw RequestException.BadRequest($"Query parameter '{ScaleParameter}' must be a number such as 0.125; got '{text}'.");
    }

    private static bool ParseBool(IQueryCollection query, string name)
    {
        string? text = query[name];
        return text switch
        {
            null => false,
            "true" or "1" => true,
            "false" or "0" => false,
            _ => throw RequestException.BadRequest($"Query parameter '{name}' must be true or false; got '{text}'."),
        };
    }
}
