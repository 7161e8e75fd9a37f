namespace PowerRetention.Kernels;

/// <summary>Element type of a tensor's storage. Computation always happens in float32.</summary>
public enum DataType
{
    /// <summary>IEEE 754 binary32.</summary>
    Float32,

    /// <summary>IEEE 754 binary16 (half precision).</summary>
    Float16,

    /// <summary>bfloat16: the upper 16 bits of a binary32 value.</summary>
    BFloat16,
}

/// <summary>Helpers for <see cref="DataType"/>.</summary>
public static class DataTypeExtensions
{
    /// <summary>Returns the size of one element in bytes.</summary>
    public static int SizeInBytes(this DataType dataType) => dataType == DataType.Float32 ? 4 : 2;

    /// <summary>Returns the short lower-case name used on the command line (f32, f16, bf16).</summary>
    public static string ShortName(this DataType dataType) => dataType switch
    {
        DataType.Float32 => "f32",
        DataType.Float16 => "f16",
        DataType.BFloat16 => "bf16",
        _ => throw new ArgumentOutOfRangeException(nameof(dataType), dataType, "Unknown data type."),
    };

    /// <summary>Parses f32, f16 or bf16 (also float32, float16, bfloat16).</summary>
    /// <exception cref="ArgumentException">The name is not a supported data type.</exception>
    public static DataType Parse(string name) => name.ToLowerInvariant() switch
    {
        "f32" or "float32" => DataType.Float32,
        "f16" or "float16" => DataType.Float16,
        "bf16" or "bfloat16" => DataType.BFloat16,
        _ => throw new ArgumentException($"Unsupported data type '{name}'; expected f32, f16 or bf16.", nameof(name)),
    };
}
