using PowerRetention.Kernels;
using PowerRetention.Kernels.IO;

namespace PowerRetention.Cli;

/// <summary><c>powerret synth</c>: writes seeded synthetic inputs for <c>powerret run</c>.</summary>
internal static class SynthCommand
{
    /// <summary>File name of the bf16 inputs, which .npy cannot hold.</summary>
    public const string SafetensorsFileName = "inputs.safetensors";

    /// <summary>Name, usage and options.</summary>
    public static readonly CommandSpec Spec = new(
        "synth",
        "Write seeded synthetic inputs.",
        ["powerret synth --tokens N --heads H --dim D --out DIR [options]"],
        "Writes Q, K and V drawn from a normal distribution divided by sqrt(d), and with --gating log-gates " +
        "log(sigmoid(x)) of normal x, the distributions of the Python retention library's create_inputs. " +
        "f32 and f16 inputs go to DIR/q.npy, k.npy, v.npy and log_g.npy (always f32), and bf16 inputs go to one " +
        $"DIR/{SafetensorsFileName} with tensors q, k, v and log_g, because .npy has no bfloat16 dtype.",
        [
            new("--tokens", "N", "Sequence length t. Required."),
            new("--heads", "H", "Key/value heads h. Required."),
            new("--q-heads", "HQ", "Query heads hq, a multiple of h. Default h."),
            new("--dim", "D", "Key dimension d. Required."),
            new("--value-dim", "E", "Value dimension e. Default d."),
            new("--batch", "B", "Batch size b. Default 1."),
            new("--gating", null, "Also write log-gates log_G (b, t, h)."),
            new("--seed", "S", "Seed of the random generator, so equal seeds give equal files. Default 42."),
            new("--dtype", "TYPE", "Data type of Q, K and V: f32, f16 or bf16. Default f32."),
            new("--out", "DIR", "Folder to write into, created when missing. Required."),
        ]);

    /// <summary>Runs the command.</summary>
    public static Task<int> ExecuteAsync(ParsedOptions options, CommandContext context)
    {
        string folder = options.GetRequiredString("--out");
        int time = options.GetRequiredInt("--tokens", minimum: 1);
        int heads = options.GetRequiredInt("--heads", minimum: 1);
        int keyDim = options.GetRequiredInt("--dim", minimum: 1);
        int queryHeads = options.GetInt("--q-heads", heads, minimum: 1);
        int valueDim = options.GetInt("--value-dim", keyDim, minimum: 1);
        int batch = options.GetInt("--batch", 1, minimum: 1);
        int seed = options.GetInt("--seed", 42, minimum: int.MinValue);
        bool gating = options.HasFlag("--gating");
        DataType dataType = ParseDataType(options);
        if (queryHeads % heads != 0)
        {
            throw options.Error($"--q-heads {queryHeads} must be a multiple of --heads {heads}");
        }

        RetentionInputs inputs = SyntheticInputs.Create(batch, time, heads, keyDim, queryHeads, valueDim, gating, seed, dataType);
        context.CancellationToken.ThrowIfCancellationRequested();
        Directory.CreateDirectory(folder);

        var tensors = new List<(string Name, Tensor Tensor)> { ("q", inputs.Q), ("k", inputs.K), ("v", inputs.V) };
        if (inputs.LogG is not null)
        {
            tensors.Add(("log_g", inputs.LogG));
        }

        if (dataType == DataType.BFloat16)
        {
            string path = Path.Combine(folder, SafetensorsFileName);
            SafetensorsFile.Write(path, tensors.ToDictionary(t => t.Name, t => t.Tensor));
            foreach ((string name, Tensor tensor) in tensors)
            {
                context.Output.WriteLine($"wrote {path}: tensor {name} {Tensor.FormatShape(tensor.Shape)} {tensor.DataType.ShortName()}");
            }
        }
        else
        {
            foreach ((string name, Tensor tensor) in tensors)
            {
                context.CancellationToken.ThrowIfCancellationRequested();
                string path = Path.Combine(folder, name + ".npy");
                NpyFile.Write(path, tensor);
                context.Output.WriteLine($"wrote {path}: {Tensor.FormatShape(tensor.Shape)} {tensor.DataType.ShortName()}");
            }
        }

        return Task.FromResult(0);
    }

    /// <summary>Parses --dtype, default f32.</summary>
    public static DataType ParseDataType(ParsedOptions options)
    {
        string text = options.GetString("--dtype") ?? "f32";
        try
        {
            return DataTypeExtensions.Parse(text);
        }
        catch (ArgumentException)
        {
            throw options.Error($"invalid value '{text}' for --dtype: expected f32, f16 or bf16");
        }
    }
}
