using System.Globalization;

namespace PowerRetention.Cli;

/// <summary>Formats rates, sizes and durations for the command's output, always with the invariant culture.</summary>
internal static class Units
{
    /// <summary>Formats a count per second with a k, M or G suffix, such as "1.25 M".</summary>
    public static string Rate(double perSecond)
    {
        if (double.IsNaN(perSecond) || double.IsInfinity(perSecond))
        {
            return "n/a";
        }

        (double value, string suffix) = Math.Abs(perSecond) switch
        {
            >= 1e9 => (perSecond / 1e9, " G"),
            >= 1e6 => (perSecond / 1e6, " M"),
            >= 1e3 => (perSecond / 1e3, " k"),
            _ => (perSecond, " "),
        };
        return (value.ToString("0.00", CultureInfo.InvariantCulture) + suffix).TrimEnd();
    }

    /// <summary>Formats a byte count in B, KiB, MiB or GiB.</summary>
    public static string Bytes(long bytes) => bytes switch
    {
        >= 1L << 30 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 30):0.00} GiB"),
        >= 1L << 20 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 20):0.00} MiB"),
        >= 1L << 10 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 10):0.00} KiB"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{bytes} B"),
    };

    /// <summary>Formats a duration as h:mm:ss.</summary>
    public static string Clock(TimeSpan duration)
    {
        long seconds = (long)Math.Ceiling(Math.Max(0, duration.TotalSeconds));
        return string.Create(CultureInfo.InvariantCulture, $"{seconds / 3600}:{seconds / 60 % 60:00}:{seconds % 60:00}");
    }

    /// <summary>Formats a value with the invariant culture.</summary>
    public static string Invariant(FormattableString text) => FormattableString.Invariant(text);
}
