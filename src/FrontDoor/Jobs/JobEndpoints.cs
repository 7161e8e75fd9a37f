using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.Options;
using PowerRetention.Client;
using PowerRetention.Grains;
using PowerRetention.Kernels;
using PowerRetention.Kernels.IO;

namespace PowerRetention.FrontDoor.Jobs;

/// <summary>
/// The job API: <c>POST /jobs</c> (safetensors body), <c>POST /jobs/files</c> (JSON of paths),
/// <c>GET /jobs/{id}</c>, <c>GET /jobs/{id}/output</c>, <c>GET /jobs/{id}/state</c> and <c>DELETE /jobs/{id}</c>.
/// Errors are problem-details JSON.
/// </summary>
internal static partial class JobEndpoints
{
    private const string SafetensorsMediaType = "application/octet-stream";

    // How long DELETE waits for a cancelled job to stop before it responds.
    private static readonly TimeSpan s_cancelWait = TimeSpan.FromSeconds(10);

    public static IEndpointRouteBuilder MapJobEndpoints(this IEndpointRouteBuilder app)
    {
        RouteGroupBuilder jobs = app.MapGroup("/jobs");
        jobs.MapPost("/", SubmitUploadAsync);
        jobs.MapPost("/files", SubmitFilesAsync);
        jobs.MapGet("/{id}", GetStatus);
        jobs.MapGet("/{id}/output", GetOutput);
        jobs.MapGet("/{id}/state", GetState);
        jobs.MapDelete("/{id}", DeleteAsync);
        return app;
    }

    private static async Task<IResult> SubmitUploadAsync(HttpContext context, JobRegistry registry, RetentionClient client, IOptions<FrontDoorOptions> options, ILoggerFactory loggers)
    {
        try
        {
            CheckCapacity(registry, options.Value);
            var id = Guid.NewGuid();

            // The cluster's job id is the front door's, so that logs and traces of both sides match.
            ProcessingOptions processing = JobRequests.FromQuery(context.Request.Query) with { JobId = id };
            UploadedInputs inputs = await UploadedInputs.ReadAsync(context.Request, registry.PathFor(id, ".input.safetensors"), options.Value.MaxBodyBytes, context.RequestAborted);
            var job = new FrontDoorJob(
                id,
                "upload",
                processing.ReturnFinalState,
                registry.PathFor(id, ".output.safetensors"),
                processing.ReturnFinalState ? registry.PathFor(id, ".state") : null,
                registry.Now);
            if (!registry.TryAdd(job))
            {
                inputs.Dispose();
                throw TooManyJobs(options.Value);
            }

            LogAccepted(Logger(loggers), id, job.Kind, Tensor.FormatShape(inputs.Q.Shape), inputs.Q.DataType.ShortName());
            registry.Run(
                job,
                async cancellationToken =>
                {
                    JobResult result = await client.ProcessAsync(inputs.Q, inputs.K, inputs.V, inputs.LogG, null, processing, job, cancellationToken);
                    SafetensorsFile.Write(job.OutputPath!, new Dictionary<string, Tensor> { ["y"] = result.Output! });
                    WriteFinalState(job, result);
                },
                inputs.Dispose);
            return await AcceptAsync(job, registry, options.Value, context.RequestAborted);
        }
        catch (RequestException rejected)
        {
            return rejected.ToResult();
        }
    }

    private static async Task<IResult> SubmitFilesAsync(HttpContext context, JobRegistry registry, RetentionClient client, IOptions<FrontDoorOptions> options, IOptions<JsonOptions> json, ILoggerFactory loggers)
    {
        try
        {
            (InputFiles files, string output, ProcessingOptions requested) = await JobRequests.ReadFileJobAsync(context.Request, options.Value.MaxJsonBodyBytes, json.Value.SerializerOptions, context.RequestAborted);
            CheckCapacity(registry, options.Value);
            var id = Guid.NewGuid();
            ProcessingOptions processing = requested with { JobId = id };
            var job = new FrontDoorJob(id, "files", processing.ReturnFinalState, output, processing.ReturnFinalState ? registry.PathFor(id, ".state") : null, registry.Now);
            if (!registry.TryAdd(job))
            {
                throw TooManyJobs(options.Value);
            }

            LogAccepted(Logger(loggers), id, job.Kind, files.Safetensors ?? files.Q!, "file");
            registry.Run(
                job,
                async cancellationToken =>
                {
                    JobResult result = await client.ProcessFilesAsync(files, output, null, processing, job, cancellationToken);
                    WriteFinalState(job, result);
                },
                () => { });
            return await AcceptAsync(job, registry, options.Value, context.RequestAborted);
        }
        catch (RequestException rejected)
        {
            return rejected.ToResult();
        }
    }

    private static IResult GetStatus(string id, JobRegistry registry)
    {
        try
        {
            return Results.Json(Status(Find(registry, id)));
        }
        catch (RequestException rejected)
        {
            return rejected.ToResult();
        }
    }

    private static IResult GetOutput(string id, JobRegistry registry)
    {
        try
        {
            FrontDoorJob job = Find(registry, id);
            CheckCompleted(job, "output");
            string path = job.OutputPath!;
            string downloadName = job.Kind == "upload" ? $"{job.Id:N}.safetensors" : Path.GetFileName(path);
            return Results.Stream(OpenResult(job, path, "output"), SafetensorsMediaType, downloadName);
        }
        catch (RequestException rejected)
        {
            return rejected.ToResult();
        }
    }

    private static IResult GetState(string id, JobRegistry registry)
    {
        try
        {
            FrontDoorJob job = Find(registry, id);
            if (!job.FinalStateRequested)
            {
                throw RequestException.NotFound($"Job {job.Id} has no final state: it was submitted without {JobRequests.FinalStateParameter}=true.");
            }

            CheckCompleted(job, "final state");
            return Results.Stream(OpenResult(job, job.StatePath!, "final state"), SafetensorsMediaType, $"{job.Id:N}.state");
        }
        catch (RequestException rejected)
        {
            return rejected.ToResult();
        }
    }

    private static async Task<IResult> DeleteAsync(string id, JobRegistry registry, ILoggerFactory loggers)
    {
        try
        {
            FrontDoorJob job = Find(registry, id);
            if (registry.Cancel(job))
            {
                LogCancelRequested(Logger(loggers), job.Id);
                await Task.WhenAny(job.Completion, Task.Delay(s_cancelWait));
                return Results.Json(Status(job), statusCode: StatusCodes.Status202Accepted);
            }

            registry.Remove(job);
            return Results.NoContent();
        }
        catch (RequestException rejected)
        {
            return rejected.ToResult();
        }
    }

    // Responds once the cluster accepted the job (its first progress report), the job ended, or the start timeout passed.
    private static async Task<IResult> AcceptAsync(FrontDoorJob job, JobRegistry registry, FrontDoorOptions options, CancellationToken requestAborted)
    {
        await Task.WhenAny(job.Started, Task.Delay(options.StartTimeout, requestAborted));
        if (job.StartFailure is Exception failure)
        {
            registry.Remove(job);
            return failure switch
            {
                ArgumentException or InsufficientMemoryException => RequestException.BadRequest(Describe(failure)).ToResult(),
                _ => Results.Problem(detail: failure.Message, statusCode: StatusCodes.Status503ServiceUnavailable, title: "Cluster could not start the job"),
            };
        }

        return Results.Accepted($"/jobs/{job.Id}", Status(job));
    }

    // ArgumentException appends " (Parameter 'name')", and ArgumentOutOfRangeException a line with the value;
    // the kernels' messages already name the tensor or option and the value.
    private static string Describe(Exception error)
    {
        int suffix = error is ArgumentException { ParamName: not null } ? error.Message.IndexOf(" (Parameter '", StringComparison.Ordinal) : -1;
        return suffix > 0 ? error.Message[..suffix] : error.Message;
    }

    private static void WriteFinalState(FrontDoorJob job, JobResult result)
    {
        if (job.StatePath is not null && result.FinalState is not null)
        {
            StateFile.Write(job.StatePath, result.FinalState);
        }
    }

    private static JobStatusResponse Status(FrontDoorJob job)
    {
        (FrontDoorJobState state, string? error, DateTimeOffset? finishedAt) = job.Snapshot();
        long done = job.TokenHeadsDone, total = job.TokenHeadsTotal;
        double progress = total > 0 ? (double)done / total : 0;
        if (state == FrontDoorJobState.Completed)
        {
            progress = 1;
        }

        bool completed = state == FrontDoorJobState.Completed;
        return new JobStatusResponse(
            job.Id,
            job.Kind,
            state,
            progress,
            done,
            total,
            error,
            job.CreatedAt,
            finishedAt,
            completed ? $"/jobs/{job.Id}/output" : null,
            completed && job.FinalStateRequested ? $"/jobs/{job.Id}/state" : null);
    }

    private static FrontDoorJob Find(JobRegistry registry, string id)
    {
        if (!Guid.TryParse(id, out Guid jobId))
        {
            throw RequestException.NotFound($"Job '{id}' not found: job ids are GUIDs such as {Guid.Empty}.");
        }

        return registry.Find(jobId)
            ?? throw RequestException.NotFound($"Job {jobId} not found. Finished jobs are kept for a limited time after they finish, then dropped.");
    }

    private static void CheckCompleted(FrontDoorJob job, string resource)
    {
        (FrontDoorJobState state, string? error, _) = job.Snapshot();
        switch (state)
        {
            case FrontDoorJobState.Running:
                double percent = job.TokenHeadsTotal > 0 ? 100.0 * job.TokenHeadsDone / job.TokenHeadsTotal : 0;
                throw RequestException.Conflict($"Job {job.Id} is running ({percent:0.#}% done); its {resource} is available once it completes.");
            case FrontDoorJobState.Failed:
                throw RequestException.Conflict($"Job {job.Id} failed, so it has no {resource}: {error}");
            case FrontDoorJobState.Cancelled:
                throw RequestException.Conflict($"Job {job.Id} was cancelled, so it has no {resource}.");
        }
    }

    private static FileStream OpenResult(FrontDoorJob job, string path, string resource)
    {
        try
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1 << 16, useAsync: true);
        }
        catch (Exception error) when (error is FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException)
        {
            string where = job.Kind == "files" ? $"The silos wrote it to {path}, which this front door cannot read" : "Its file was deleted";
            throw RequestException.NotFound($"The {resource} of job {job.Id} is not available here. {where}: {error.Message}");
        }
    }

    private static void CheckCapacity(JobRegistry registry, FrontDoorOptions options)
    {
        if (registry.RunningCount >= options.MaxRunningJobs)
        {
            throw TooManyJobs(options);
        }
    }

    private static RequestException TooManyJobs(FrontDoorOptions options) => new(
        StatusCodes.Status503ServiceUnavailable,
        "Too many jobs",
        $"{options.MaxRunningJobs} jobs are running, the configured maximum ({FrontDoorOptions.SectionName}:{nameof(FrontDoorOptions.MaxRunningJobs)}). Retry once one finishes.");

    private static ILogger Logger(ILoggerFactory loggers) => loggers.CreateLogger("PowerRetention.FrontDoor.Jobs");

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId} accepted ({Kind}): q {Shape} {DataType}")]
    private static partial void LogAccepted(ILogger logger, Guid jobId, string kind, string shape, string dataType);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId}: cancellation requested")]
    private static partial void LogCancelRequested(ILogger logger, Guid jobId);
}
