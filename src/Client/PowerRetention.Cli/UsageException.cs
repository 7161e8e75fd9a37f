namespace PowerRetention.Cli;

/// <summary>
/// Bad usage or bad input that the user fixes by changing the command or its files: an unknown option,
/// a missing or unparsable value, an output format that cannot hold the data. The command exits with code 2.
/// </summary>
internal sealed class UsageException(string message) : Exception(message);
