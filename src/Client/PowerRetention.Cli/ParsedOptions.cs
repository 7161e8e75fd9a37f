using System.Globalization;

namespace PowerRetention.Cli;

/// <summary>
/// Options of one command parsed from <c>--name value</c>, <c>--name=value</c> and <c>--flag</c> arguments,
/// checked against the command's <see cref="CommandSpec"/>. Accessors throw <see cref="UsageException"/>
/// with a message naming the option.
/// </summary>
internal sealed class ParsedOptions
{
    private readonly CommandSpec _command;
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _flags = new(StringComparer.Ordinal);

    private ParsedOptions(CommandSpec command)
    {
        _command = command;
    }

    /// <summary>Parses the arguments that follow the command name.</summary>
    /// <exception cref="UsageException">An option is unknown, repeated or lacks its value, or a positional argument is present.</exception>
    public static ParsedOptions Parse(CommandSpec command, IReadOnlyList<string> arguments)
    {
        var parsed = new ParsedOptions(command);
        for (int i = 0; i < arguments.Count; i++)
        {
            string argument = arguments[i];
            if (argument == "-h")
            {
                argument = "--help";
            }

            if (!argument.StartsWith("--", StringComparison.Ordinal) || argument.Length == 2)
            {
                throw parsed.Error($"unexpected argument '{argument}' (options start with --)");
            }

            string name = argument;
            string? inlineValue = null;
            int equals = argument.IndexOf('=', StringComparison.Ordinal);
            if (equals > 0)
            {
                name = argument[..equals];
                inlineValue = argument[(equals + 1)..];
            }

            OptionSpec option = command.AllOptions.FirstOrDefault(o => o.Name == name)
                ?? throw parsed.Error($"unknown option '{name}'");

            if (option.IsFlag)
            {
                if (inlineValue is not null)
                {
                    throw parsed.Error($"option {name} is a flag and takes no value");
                }

                parsed._flags.Add(name);
                continue;
            }

            string value;
            if (inlineValue is not null)
            {
                value = inlineValue;
            }
            else if (i + 1 < arguments.Count)
            {
                value = arguments[++i];
            }
            else
            {
                throw parsed.Error($"option {name} needs a value ({option.ValueName})");
            }

            if (!parsed._values.TryAdd(name, value))
            {
                throw parsed.Error($"option {name} is given more than once");
            }
        }

        return parsed;
    }

    /// <summary>The values of the options given with one, by option name.</summary>
    public IReadOnlyDictionary<string, string> Values => _values;

    /// <summary>True when the flag was given.</summary>
    public bool HasFlag(string name) => _flags.Contains(name);

    /// <summary>True when the option was given with a value.</summary>
    public bool Has(string name) => _values.ContainsKey(name);

    /// <summary>Returns the option's value, or null when it was not given.</summary>
    public string? GetString(string name) => _values.TryGetValue(name, out string? value) ? value : null;

    /// <summary>Returns the option's value.</summary>
    /// <exception cref="UsageException">The option was not given.</exception>
    public string GetRequiredString(string name) =>
        GetString(name) ?? throw Error($"missing required option {name} {ValueNameOf(name)}");

    /// <summary>Returns the option's integer value, or <paramref name="defaultValue"/> when it was not given.</summary>
    /// <exception cref="UsageException">The value is not an integer or is below <paramref name="minimum"/>.</exception>
    public int GetInt(string name, int defaultValue, int minimum) => GetOptionalInt(name, minimum) ?? defaultValue;

    /// <summary>Returns the option's integer value, or null when it was not given.</summary>
    /// <exception cref="UsageException">The value is not an integer or is below <paramref name="minimum"/>.</exception>
    public int? GetOptionalInt(string name, int minimum)
    {
        string? text = GetString(name);
        return text is null ? null : ParseInt(name, text, minimum);
    }

    /// <summary>Returns the option's integer value.</summary>
    /// <exception cref="UsageException">The option is missing, not an integer or below <paramref name="minimum"/>.</exception>
    public int GetRequiredInt(string name, int minimum) => ParseInt(name, GetRequiredString(name), minimum);

    /// <summary>Returns the comma-separated integers of the option, or <paramref name="defaultValue"/> when it was not given.</summary>
    /// <exception cref="UsageException">An item is not an integer or is below <paramref name="minimum"/>.</exception>
    public int[] GetIntList(string name, int defaultValue, int minimum)
    {
        string? text = GetString(name);
        if (text is null)
        {
            return [defaultValue];
        }

        string[] items = text.Split(',', StringSplitOptions.TrimEntries);
        return items.Select(item => ParseInt(name, item, minimum)).ToArray();
    }

    /// <summary>Returns the option's value as a finite positive float, or null when it was not given.</summary>
    /// <exception cref="UsageException">The value is not a finite positive number.</exception>
    public float? GetOptionalPositiveFloat(string name)
    {
        string? text = GetString(name);
        if (text is null)
        {
            return null;
        }

        if (!float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out float value) || !float.IsFinite(value) || value <= 0f)
        {
            throw Error($"invalid value '{text}' for {name}: expected a finite positive number");
        }

        return value;
    }

    /// <summary>Creates the exception for a problem with this command's arguments, with a pointer to its help.</summary>
    public UsageException Error(string problem) =>
        new($"{problem}. Run 'powerret {_command.Name} --help' for the options.");

    private int ParseInt(string name, string text, int minimum)
    {
        if (!int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int value))
        {
            throw Error($"invalid value '{text}' for {name}: expected an integer");
        }

        if (value < minimum)
        {
            throw Error($"invalid value {value} for {name}: must be at least {minimum}");
        }

        return value;
    }

    private string ValueNameOf(string name) =>
        _command.AllOptions.FirstOrDefault(o => o.Name == name)?.ValueName ?? "VALUE";
}
