using Microsoft.AspNetCore.Http.Features;
using PowerRetention.Kernels;
using PowerRetention.Kernels.IO;

namespace PowerRetention.FrontDoor.Jobs;

/// <summary>
/// The tensors of a <c>POST /jobs</c> body: the body is copied to a file in the work folder and
/// memory-mapped. Disposing releases the tensors and deletes the file.
/// </summary>
internal sealed class UploadedInputs : IDisposable
{
    private const int CopyBufferBytes = 1 << 20;

    private readonly SafetensorsReader _reader;
    private readonly string _path;

    private UploadedInputs(SafetensorsReader reader, string path, Tensor q, Tensor k, Tensor v, Tensor? logG)
    {
        _reader = reader;
        _path = path;
        Q = q;
        K = k;
        V = v;
        LogG = logG;
    }

    public Tensor Q { get; }

    public Tensor K { get; }

    public Tensor V { get; }

    public Tensor? LogG { get; }

    /// <summary>Copies the request body to <paramref name="path"/> and opens it as a safetensors file with tensors q, k, v and optionally log_g.</summary>
    /// <exception cref="RequestException">The body is too large (413), not a safetensors file, or lacks q, k or v (400).</exception>
    public static async Task<UploadedInputs> ReadAsync(HttpRequest request, string path, long maxBytes, CancellationToken cancellationToken)
    {
        if (request.ContentLength > maxBytes)
        {
            throw RequestException.TooLarge(maxBytes);
        }

        // Kestrel's own limit (30 MB unless configured) would reject large bodies before this one applies.
        IHttpMaxRequestBodySizeFeature? sizeLimit = request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (sizeLimit is { IsReadOnly: false })
        {
            sizeLimit.MaxRequestBodySize = maxBytes;
        }

        try
        {
            await CopyBodyAsync(request.Body, path, maxBytes, cancellationToken);
            return Open(path);
        }
        catch
        {
            File.Delete(path);
            throw;
        }
    }

    public void Dispose()
    {
        Q.Dispose();
        K.Dispose();
        V.Dispose();
        LogG?.Dispose();
        _reader.Dispose();
        File.Delete(_path);
    }

    private static async Task CopyBodyAsync(Stream body, string path, long maxBytes, CancellationToken cancellationToken)
    {
        await using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, CopyBufferBytes, useAsync: true);
        byte[] buffer = new byte[CopyBufferBytes];
        long total = 0;
        try
        {
            int read;
            while ((read = await body.ReadAsync(buffer, cancellationToken)) > 0)
            {
                total += read;
                if (total > maxBytes)
                {
                    throw RequestException.TooLarge(maxBytes);
                }

                await file.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
            }
        }
        catch (BadHttpRequestException error) when (error.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            throw RequestException.TooLarge(maxBytes);
        }
    }

    private static UploadedInputs Open(string path)
    {
        SafetensorsReader reader;
        try
        {
            reader = SafetensorsFile.Open(path);
        }
        catch (FileFormatException error)
        {
            throw RequestException.BadRequest($"The request body is not a valid safetensors file: {Problem(error, path)}");
        }

        var taken = new List<Tensor>();
        try
        {
            Tensor q = Required(reader, "q", taken);
            Tensor k = Required(reader, "k", taken);
            Tensor v = Required(reader, "v", taken);
            Tensor? logG = Optional(reader, "log_g", taken);
            return new UploadedInputs(reader, path, q, k, v, logG);
        }
        catch (FileFormatException error)
        {
            taken.ForEach(tensor => tensor.Dispose());
            reader.Dispose();
            throw RequestException.BadRequest($"The request body has an unusable tensor: {Problem(error, path)}");
        }
        catch
        {
            taken.ForEach(tensor => tensor.Dispose());
            reader.Dispose();
            throw;
        }
    }

    private static Tensor Required(SafetensorsReader reader, string name, List<Tensor> taken)
    {
        Tensor tensor = Optional(reader, name, taken)
            ?? throw RequestException.BadRequest(
                $"The request body has no tensor '{name}'. A job needs tensors q (b, t, hq, d), k (b, t, h, d), v (b, t, h, e) " +
                $"and optionally log_g (b, t, h); the body has {Describe(reader.TensorNames)}.");
        return tensor;
    }

    private static Tensor? Optional(SafetensorsReader reader, string name, List<Tensor> taken)
    {
        if (!reader.TryGetTensor(name, out Tensor? tensor))
        {
            return null;
        }

        taken.Add(tensor);
        return tensor;
    }

    private static string Describe(IReadOnlyList<string> names) =>
        names.Count == 0 ? "no tensors" : "tensors " + string.Join(", ", names.Select(name => $"'{name}'"));

    // The reader's messages start with the file path, which is the front door's business, not the client's.
    private static string Problem(FileFormatException error, string path) =>
        error.Message.StartsWith(path + ": ", StringComparison.Ordinal) ? error.Message[(path.Length + 2)..] : error.Message;
}
