namespace PowerRetention.FrontDoor;

/// <summary>
/// Settings of the front door, bound from the configuration section <see cref="SectionName"/>
/// (environment variables such as <c>PowerRetention__FrontDoor__MaxBodyBytes</c>).
/// </summary>
public sealed class FrontDoorOptions
{
    /// <summary>Configuration section of these settings.</summary>
    public const string SectionName = "PowerRetention:FrontDoor";

    /// <summary>Largest accepted <c>POST /jobs</c> body in bytes; larger bodies get 413. Default 512 MiB.</summary>
    public long MaxBodyBytes { get; set; } = 512L << 20;

    /// <summary>Largest accepted <c>POST /jobs/files</c> JSON body in bytes. Default 1 MiB.</summary>
    public long MaxJsonBodyBytes { get; set; } = 1 << 20;

    /// <summary>Jobs that may run at once; more get 503. Default 16.</summary>
    public int MaxRunningJobs { get; set; } = 16;

    /// <summary>Finished jobs kept for their results; past this the oldest finished job is removed. Default 256.</summary>
    public int MaxFinishedJobs { get; set; } = 256;

    /// <summary>How long a finished job's status, output and state stay available. Default 1 hour.</summary>
    public TimeSpan ResultTimeToLive { get; set; } = TimeSpan.FromHours(1);

    /// <summary>How long <c>POST</c> waits for the cluster to accept a job before it responds 202 anyway. Default 30 s.</summary>
    public TimeSpan StartTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Folder for uploaded inputs and finished outputs; null means a new folder under the system temporary folder.</summary>
    public string? WorkDirectory { get; set; }

    /// <summary>Checks the settings at startup.</summary>
    /// <exception cref="InvalidOperationException">A setting is out of range; the message names it and its value.</exception>
    public void Validate()
    {
        Check(MaxBodyBytes > 0, nameof(MaxBodyBytes), MaxBodyBytes, "greater than 0");
        Check(MaxJsonBodyBytes > 0, nameof(MaxJsonBodyBytes), MaxJsonBodyBytes, "greater than 0");
        Check(MaxRunningJobs > 0, nameof(MaxRunningJobs), MaxRunningJobs, "greater than 0");
        Check(MaxFinishedJobs >= 0, nameof(MaxFinishedJobs), MaxFinishedJobs, "0 or more");
        Check(ResultTimeToLive > TimeSpan.Zero, nameof(ResultTimeToLive), ResultTimeToLive, "a positive time span such as 01:00:00");
        Check(StartTimeout > TimeSpan.Zero, nameof(StartTimeout), StartTimeout, "a positive time span such as 00:00:30");
    }

    private static void Check(bool valid, string name, object value, string expected)
    {
        if (!valid)
        {
            throw new InvalidOperationException($"Invalid setting {SectionName}:{name} = {value}: expected {expected}.");
        }
    }
}
