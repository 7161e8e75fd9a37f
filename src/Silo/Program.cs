using PowerRetention.Silo;

// Ctrl+C and SIGTERM stop the silo gracefully through the host's console lifetime.
return await SiloHost.RunCommandLineAsync(args, Console.Out, Console.Error, CancellationToken.None).ConfigureAwait(false);
