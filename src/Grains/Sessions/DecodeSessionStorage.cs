using Microsoft.Extensions.DependencyInjection;
using Orleans.Storage;
using StackExchange.Redis;

namespace PowerRetention.Grains;

/// <summary>Limits of the decode sessions a silo hosts.</summary>
public sealed class DecodeSessionOptions
{
    /// <summary>Default of <see cref="MaxStateBytes"/>: 96 MiB.</summary>
    public const long DefaultMaxStateBytes = 96L << 20;

    /// <summary>
    /// Maximum size of a session's state (S and s, b x h x D x (e + 1) x 4 bytes), also applied to a full
    /// cache. A session persists its state as one storage entry and exports it in one message. So this
    /// must stay below Orleans' maximum message body size (100 MB by default), which also bounds memory
    /// grain storage calls, and below the storage's own limit (512 MB for one Redis value).
    /// </summary>
    // TODO: larger states (p=4 and d=64 need 196 MB per head) would need the state split over several storage entries.
    public long MaxStateBytes { get; set; } = DefaultMaxStateBytes;
}

/// <summary>Registers the grain storage that decode sessions persist to.</summary>
public static class DecodeSessionStorage
{
    /// <summary>Name of the grain storage provider decode sessions use.</summary>
    public const string StorageName = "powerret-sessions";

    /// <summary>
    /// Adds the "powerret-sessions" grain storage: Redis when <paramref name="redisConnectionString"/> is
    /// given, else memory storage, which keeps sessions only while the silos holding its storage grains
    /// run. Entries are stored as their MessagePack bytes. Safe to call more than once; the first call's
    /// storage wins.
    /// </summary>
    /// <param name="builder">The silo builder.</param>
    /// <param name="redisConnectionString">A StackExchange.Redis configuration string such as "localhost:6379", or null.</param>
    /// <param name="configure">Changes session limits.</param>
    /// <exception cref="ArgumentException">The Redis configuration string cannot be parsed.</exception>
    public static ISiloBuilder AddDecodeSessionStorage(this ISiloBuilder builder, string? redisConnectionString, Action<DecodeSessionOptions>? configure = null)
    {
        IServiceCollection services = builder.Services;
        if (configure is not null)
        {
            services.Configure(configure);
        }

        if (services.Any(d => d.ServiceType == typeof(SessionStorageSerializer)))
        {
            return builder;
        }

        var serializer = new SessionStorageSerializer();
        services.AddSingleton(serializer);
        services.AddOptions<DecodeSessionOptions>();
        if (redisConnectionString is null)
        {
            builder.AddMemoryGrainStorage(StorageName, options => options.GrainStorageSerializer = serializer);
        }
        else
        {
            ConfigurationOptions redis = ConfigurationOptions.Parse(redisConnectionString);
            // Checked by hand against Redis 7.0: entries are stored as raw MessagePack, one key per state.
            // NOTE: no automated test covers this branch, because the test machines run no Redis server.
            builder.AddRedisGrainStorage(StorageName, options =>
            {
                options.ConfigurationOptions = redis;
                options.GrainStorageSerializer = serializer;

                // Dropping a session deletes its keys instead of leaving them with empty data.
                options.DeleteStateOnClear = true;
            });
        }

        return builder;
    }
}

/// <summary>One persisted part of a decode session: the MessagePack bytes of its record or of a base state.</summary>
[GenerateSerializer, Alias("powerret.SessionStorageEntry")]
public sealed class SessionStorageEntry
{
    /// <summary>The encoded bytes; empty when nothing is stored.</summary>
    [Id(0)]
    public byte[] Data { get; set; } = [];
}

/// <summary>
/// Stores a <see cref="SessionStorageEntry"/> as its bytes alone, so the storage contains the
/// MessagePack encoding itself rather than a JSON wrapper around it. It supports no other type.
/// </summary>
public sealed class SessionStorageSerializer : IGrainStorageSerializer
{
    /// <inheritdoc />
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not <see cref="SessionStorageEntry"/>.</exception>
    public BinaryData Serialize<T>(T? input) => input is SessionStorageEntry entry
        ? new BinaryData(entry.Data)
        : throw new NotSupportedException($"The {DecodeSessionStorage.StorageName} storage supports only {nameof(SessionStorageEntry)} values, not {typeof(T)}.");

    /// <inheritdoc />
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not <see cref="SessionStorageEntry"/>.</exception>
    public T Deserialize<T>(BinaryData input) => typeof(T) == typeof(SessionStorageEntry)
        ? (T)(object)new SessionStorageEntry { Data = input.ToArray() }
        : throw new NotSupportedException($"The {DecodeSessionStorage.StorageName} storage supports only {nameof(SessionStorageEntry)} values, not {typeof(T)}.");
}
