using System.Buffers;
using System.Buffers.Binary;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace PowerRetention.Kernels.IO;

/// <summary>
/// The JSON header of a safetensors file. The file is an 8-byte little-endian header length N, N bytes
/// of UTF-8 JSON mapping each tensor name to its dtype, shape and data_offsets (plus an optional
/// "__metadata__" object of string values), then the data buffer that the offsets index.
/// </summary>
internal sealed class SafetensorsHeader
{
    /// <summary>Size of the header length prefix in bytes.</summary>
    public const int LengthPrefixBytes = 8;

    /// <summary>Header key of the metadata object.</summary>
    public const string MetadataKey = "__metadata__";

    private SafetensorsHeader(Dictionary<string, SafetensorsTensorInfo> tensors, Dictionary<string, string> metadata)
    {
        Tensors = tensors;
        Metadata = metadata;
    }

    /// <summary>Tensor entries by name.</summary>
    public IReadOnlyDictionary<string, SafetensorsTensorInfo> Tensors { get; }

    /// <summary>The "__metadata__" entries, empty when the header has none.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Returns the dtype name that safetensors uses for <paramref name="dataType"/>.</summary>
    public static string DtypeNameOf(DataType dataType) => dataType switch
    {
        DataType.Float32 => "F32",
        DataType.Float16 => "F16",
        DataType.BFloat16 => "BF16",
        _ => throw new ArgumentOutOfRangeException(nameof(dataType), dataType, "Unknown data type."),
    };

    /// <summary>
    /// Parses and checks the header JSON: every entry needs a dtype, a shape of non-negative integers and
    /// data_offsets inside a data buffer of <paramref name="bufferLength"/> bytes that match the shape
    /// whenever the dtype's element size is known.
    /// </summary>
    /// <exception cref="FileFormatException">The JSON is invalid or an entry is missing, malformed or out of range.</exception>
    public static SafetensorsHeader Parse(string path, ReadOnlyMemory<byte> json, long bufferLength)
    {
        try
        {
            using JsonDocument document = JsonDocument.Parse(json);
            return Parse(path, document.RootElement, bufferLength);
        }
        catch (JsonException exception)
        {
            throw new FileFormatException(path, $"the safetensors header is not valid JSON: {exception.Message}", exception);
        }
        catch (InvalidOperationException exception)
        {
            // JsonElement.GetString throws this for a string that is not valid UTF-8.
            throw new FileFormatException(path, $"the safetensors header contains an invalid string: {exception.Message}", exception);
        }
    }

    /// <summary>
    /// Builds the length prefix and the JSON header for tensors stored back to back in the given order,
    /// padded with spaces so the data buffer starts at a multiple of 8 bytes.
    /// </summary>
    /// <returns>The header bytes, including the length prefix, and the size of the data buffer.</returns>
    /// <exception cref="ArgumentException">A name is "__metadata__" or appears twice, a shape has a negative dimension, or a metadata value is null.</exception>
    public static (byte[] Header, long DataBytes) Build(IReadOnlyList<(string Name, DataType Type, int[] Shape)> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        var json = new ArrayBufferWriter<byte>();
        var options = new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        var names = new HashSet<string>(StringComparer.Ordinal);
        long offset = 0;
        using (var writer = new Utf8JsonWriter(json, options))
        {
            writer.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                writer.WriteStartObject(MetadataKey);
                foreach (KeyValuePair<string, string> entry in metadata.OrderBy(pair => pair.Key, StringComparer.Ordinal))
                {
                    if (entry.Value is null)
                    {
                        throw new ArgumentException($"Metadata value '{entry.Key}' is null, but safetensors metadata values must be strings.", nameof(metadata));
                    }

                    writer.WriteString(entry.Key, entry.Value);
                }

                writer.WriteEndObject();
            }

            foreach ((string name, DataType type, int[] shape) in tensors)
            {
                if (name == MetadataKey)
                {
                    throw new ArgumentException($"A tensor cannot be named '{MetadataKey}' because the header reserves that key for metadata.", nameof(tensors));
                }

                if (!names.Add(name))
                {
                    throw new ArgumentException($"Tensor name '{name}' appears twice.", nameof(tensors));
                }

                long bytes = checked(Tensor.ElementCountOf(shape) * type.SizeInBytes());
                writer.WriteStartObject(name);
                writer.WriteString("dtype", DtypeNameOf(type));
                writer.WriteStartArray("shape");
                foreach (int dim in shape)
                {
                    writer.WriteNumberValue(dim);
                }

                writer.WriteEndArray();
                writer.WriteStartArray("data_offsets");
                writer.WriteNumberValue(offset);
                writer.WriteNumberValue(offset + bytes);
                writer.WriteEndArray();
                writer.WriteEndObject();
                offset = checked(offset + bytes);
            }

            writer.WriteEndObject();
        }

        int paddedLength = (json.WrittenCount + 7) / 8 * 8;
        var header = new byte[LengthPrefixBytes + paddedLength];
        BinaryPrimitives.WriteUInt64LittleEndian(header, (ulong)paddedLength);
        json.WrittenSpan.CopyTo(header.AsSpan(LengthPrefixBytes));
        header.AsSpan(LengthPrefixBytes + json.WrittenCount).Fill((byte)' ');
        return (header, offset);
    }

    private static SafetensorsHeader Parse(string path, JsonElement root, long bufferLength)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new FileFormatException(path, $"the safetensors header must be a JSON object, but it is a JSON {root.ValueKind}.");
        }

        var tensors = new Dictionary<string, SafetensorsTensorInfo>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (JsonProperty property in root.EnumerateObject())
        {
            if (property.Name == MetadataKey)
            {
                ParseMetadata(path, property.Value, metadata);
                continue;
            }

            if (tensors.ContainsKey(property.Name))
            {
                throw new FileFormatException(path, $"tensor '{property.Name}' appears twice in the safetensors header.");
            }

            tensors.Add(property.Name, ParseTensor(path, property.Name, property.Value, bufferLength));
        }

        return new SafetensorsHeader(tensors, metadata);
    }

    private static void ParseMetadata(string path, JsonElement element, Dictionary<string, string> metadata)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new FileFormatException(path, $"\"{MetadataKey}\" must be a JSON object of strings, but it is a JSON {element.ValueKind}.");
        }

        foreach (JsonProperty entry in element.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.String)
            {
                throw new FileFormatException(path, $"metadata value '{entry.Name}' is a JSON {entry.Value.ValueKind}, but safetensors metadata values must be strings.");
            }

            metadata[entry.Name] = entry.Value.GetString()!;
        }
    }

    private static SafetensorsTensorInfo ParseTensor(string path, string name, JsonElement entry, long bufferLength)
    {
        if (entry.ValueKind != JsonValueKind.Object)
        {
            throw new FileFormatException(path, $"tensor '{name}' must be a JSON object with dtype, shape and data_offsets, but it is a JSON {entry.ValueKind}.");
        }

        JsonElement dtypeElement = RequireField(path, name, entry, "dtype", JsonValueKind.String);
        JsonElement shapeElement = RequireField(path, name, entry, "shape", JsonValueKind.Array);
        JsonElement offsetsElement = RequireField(path, name, entry, "data_offsets", JsonValueKind.Array);

        string dtypeName = dtypeElement.GetString()!;
        int[] shape = ParseShape(path, name, shapeElement);
        (long begin, long end) = ParseOffsets(path, name, offsetsElement, bufferLength);

        int? elementSize = ElementSizeOf(dtypeName);
        if (elementSize is int size)
        {
            long expected;
            try
            {
                expected = checked(Tensor.ElementCountOf(shape) * size);
            }
            catch (OverflowException)
            {
                throw new FileFormatException(path, $"tensor '{name}' has shape {Tensor.FormatShape(shape)}, whose size in bytes overflows a 64-bit integer.");
            }

            if (end - begin != expected)
            {
                throw new FileFormatException(path, $"tensor '{name}' ({dtypeName}, shape {Tensor.FormatShape(shape)}) needs {expected} bytes, but data_offsets [{begin}, {end}] span {end - begin} bytes.");
            }
        }

        return new SafetensorsTensorInfo(name, dtypeName, DataTypeOf(dtypeName), shape, begin, end);
    }

    private static JsonElement RequireField(string path, string name, JsonElement entry, string field, JsonValueKind kind)
    {
        if (!entry.TryGetProperty(field, out JsonElement value))
        {
            throw new FileFormatException(path, $"tensor '{name}' has no \"{field}\" field.");
        }

        if (value.ValueKind != kind)
        {
            throw new FileFormatException(path, $"the \"{field}\" field of tensor '{name}' must be a JSON {kind}, but it is a JSON {value.ValueKind}.");
        }

        return value;
    }

    private static int[] ParseShape(string path, string name, JsonElement shapeElement)
    {
        var shape = new int[shapeElement.GetArrayLength()];
        int axis = 0;
        foreach (JsonElement dimElement in shapeElement.EnumerateArray())
        {
            if (dimElement.ValueKind != JsonValueKind.Number || !dimElement.TryGetInt64(out long dim))
            {
                throw new FileFormatException(path, $"dimension {axis} of tensor '{name}' is {dimElement.GetRawText()}, but dimensions must be integers.");
            }

            if (dim < 0)
            {
                throw new FileFormatException(path, $"dimension {axis} of tensor '{name}' is negative ({dim}).");
            }

            if (dim > int.MaxValue)
            {
                throw new FileFormatException(path, $"dimension {axis} of tensor '{name}' is {dim}, more than the maximum of {int.MaxValue} that tensors here support.");
            }

            shape[axis++] = (int)dim;
        }

        return shape;
    }

    private static (long Begin, long End) ParseOffsets(string path, string name, JsonElement offsetsElement, long bufferLength)
    {
        if (offsetsElement.GetArrayLength() != 2)
        {
            throw new FileFormatException(path, $"data_offsets of tensor '{name}' must be [begin, end], not {offsetsElement.GetRawText()}.");
        }

        var offsets = new long[2];
        int index = 0;
        foreach (JsonElement offsetElement in offsetsElement.EnumerateArray())
        {
            if (offsetElement.ValueKind != JsonValueKind.Number || !offsetElement.TryGetInt64(out long offset) || offset < 0)
            {
                throw new FileFormatException(path, $"data_offsets of tensor '{name}' must be non-negative integers, not {offsetsElement.GetRawText()}.");
            }

            offsets[index++] = offset;
        }

        (long begin, long end) = (offsets[0], offsets[1]);
        if (begin > end)
        {
            throw new FileFormatException(path, $"data_offsets [{begin}, {end}] of tensor '{name}' end before they begin.");
        }

        if (end > bufferLength)
        {
            throw new FileFormatException(path, $"data_offsets [{begin}, {end}] of tensor '{name}' extend past the end of the data buffer ({bufferLength} bytes).");
        }

        return (begin, end);
    }

    private static DataType? DataTypeOf(string dtypeName) => dtypeName switch
    {
        "F32" => DataType.Float32,
        "F16" => DataType.Float16,
        "BF16" => DataType.BFloat16,
        _ => null,
    };

    // Byte sizes of the dtypes in the safetensors Rust crate's Dtype enum (version 0.4.1). A dtype missing
    // here, such as a newer sub-byte type, skips the size check and still fails when it is requested.
    private static int? ElementSizeOf(string dtypeName) => dtypeName switch
    {
        "BOOL" or "U8" or "I8" or "F8_E5M2" or "F8_E4M3" => 1,
        "I16" or "U16" or "F16" or "BF16" => 2,
        "I32" or "U32" or "F32" => 4,
        "I64" or "U64" or "F64" => 8,
        _ => null,
    };
}
