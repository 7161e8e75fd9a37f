using Orleans.Placement;
using Orleans.Runtime.Placement;

namespace PowerRetention.Grains;

/// <summary>
/// Placement of segment workers: segment i of a job goes to the i-th live silo (in address order,
/// modulo the silo count), so a job's segments spread evenly. When a silo dies its workers are
/// placed again over the silos that remain.
/// </summary>
[Serializable, GenerateSerializer, Immutable, SuppressReferenceTracking, Alias("powerret.SpreadPlacement")]
public sealed class SpreadPlacementStrategy : PlacementStrategy
{
    internal static readonly SpreadPlacementStrategy Instance = new();
}

/// <summary>Marks a grain class for <see cref="SpreadPlacementStrategy"/>.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class SpreadPlacementAttribute : PlacementAttribute
{
    /// <summary>Creates the attribute.</summary>
    public SpreadPlacementAttribute()
        : base(SpreadPlacementStrategy.Instance)
    {
    }
}

/// <summary>Chooses the silo for a worker from the segment number at the end of its key ("jobId/segment").</summary>
internal sealed class SpreadPlacementDirector : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        SiloAddress[] silos = context.GetCompatibleSilos(target).OrderBy(s => s.ToString(), StringComparer.Ordinal).ToArray();
        if (silos.Length == 0)
        {
            throw new OrleansException($"No silo can host {target.GrainIdentity}.");
        }

        string key = target.GrainIdentity.Key.ToString();
        int separator = key.LastIndexOf('/');
        int index = separator >= 0 && int.TryParse(key.AsSpan(separator + 1), out int segment)
            ? segment
            : Math.Abs(key.GetHashCode(StringComparison.Ordinal));
        return Task.FromResult(silos[index % silos.Length]);
    }
}
