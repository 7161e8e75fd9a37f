namespace PowerRetention.FrontDoor.Jobs;

/// <summary>A request the front door rejects; becomes a problem-details response with this status.</summary>
internal sealed class RequestException(int statusCode, string title, string detail) : Exception(detail)
{
    public int StatusCode { get; } = statusCode;

    public string Title { get; } = title;

    public IResult ToResult() => Results.Problem(detail: Message, statusCode: StatusCode, title: Title);

    public static RequestException BadRequest(string detail) => new(StatusCodes.Status400BadRequest, "Invalid request", detail);

    public static RequestException NotFound(string detail) => new(StatusCodes.Status404NotFound, "Not found", detail);

    public static RequestException Conflict(string detail) => new(StatusCodes.Status409Conflict, "Job not completed", detail);

    public static RequestException TooLarge(long maxBytes) => new(
        StatusCodes.Status413PayloadTooLarge,
        "Request body too large",
        $"The request body exceeds the limit of {maxBytes} bytes ({maxBytes / (1024.0 * 1024.0):0.#} MiB). " +
        $"Send a smaller body, or raise {FrontDoorOptions.SectionName}:{nameof(FrontDoorOptions.MaxBodyBytes)}.");
}
