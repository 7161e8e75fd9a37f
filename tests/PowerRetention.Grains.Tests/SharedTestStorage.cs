using Orleans.Storage;

namespace PowerRetention.Grains.Tests;

/// <summary>
/// Grain storage kept in a static dictionary, so every in-process silo of a test cluster reads the same
/// entries, and they survive any silo being killed as entries in Redis would. Entries are stored as
/// the bytes <see cref="SessionStorageSerializer"/> produces. Tests can make writes fail and change
/// stored bytes.
/// </summary>
public sealed class SharedTestStorage : IGrainStorage
{
    private static readonly object s_lock = new();
    private static readonly Dictionary<(string Key, string State), (byte[] Data, string ETag)> s_entries = [];
    private static readonly SessionStorageSerializer s_serializer = new();
    private static string? s_failingState;

    /// <summary>Makes the next write of a state whose name starts with <paramref name="statePrefix"/> throw an <see cref="IOException"/>.</summary>
    public static void FailNextWrite(string statePrefix)
    {
        lock (s_lock)
        {
            s_failingState = statePrefix;
        }
    }

    /// <summary>Whether a failure set by <see cref="FailNextWrite"/> is still waiting for its write.</summary>
    public static bool FailurePending
    {
        get
        {
            lock (s_lock)
            {
                return s_failingState is not null;
            }
        }
    }

    /// <summary>Replaces the stored bytes of one state of the grain with string key <paramref name="key"/>.</summary>
    public static void Change(string key, string state, Func<byte[], byte[]> change)
    {
        lock (s_lock)
        {
            (byte[] data, string etag) = s_entries.TryGetValue((key, state), out var entry)
                ? entry
                : throw new KeyNotFoundException($"No stored state '{state}' for grain key '{key}'.");
            s_entries[(key, state)] = (change(data), etag);
        }
    }

    /// <summary>Returns the stored bytes of one state, or null.</summary>
    public static byte[]? Read(string key, string state)
    {
        lock (s_lock)
        {
            return s_entries.TryGetValue((key, state), out var entry) ? entry.Data : null;
        }
    }

    public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        lock (s_lock)
        {
            if (s_entries.TryGetValue((grainId.Key.ToString()!, stateName), out var entry))
            {
                grainState.State = s_serializer.Deserialize<T>(new BinaryData(entry.Data));
                grainState.ETag = entry.ETag;
                grainState.RecordExists = true;
            }
        }

        return Task.CompletedTask;
    }

    public Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        lock (s_lock)
        {
            if (s_failingState is not null && stateName.StartsWith(s_failingState, StringComparison.Ordinal))
            {
                s_failingState = null;
                throw new IOException($"Injected failure writing state '{stateName}' of {grainId}.");
            }

            var key = (grainId.Key.ToString()!, stateName);
            if (s_entries.TryGetValue(key, out var entry) && entry.ETag != grainState.ETag)
            {
                throw new InconsistentStateException($"ETag mismatch writing state '{stateName}' of {grainId}: stored {entry.ETag}, given {grainState.ETag}.");
            }

            string etag = Guid.NewGuid().ToString("N");
            s_entries[key] = (s_serializer.Serialize(grainState.State).ToArray(), etag);
            grainState.ETag = etag;
            grainState.RecordExists = true;
        }

        return Task.CompletedTask;
    }

    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        lock (s_lock)
        {
            s_entries.Remove((grainId.Key.ToString()!, stateName));
            grainState.ETag = null;
            grainState.RecordExists = false;
        }

        return Task.CompletedTask;
    }
}
