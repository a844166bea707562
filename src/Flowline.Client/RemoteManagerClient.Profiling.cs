using Flowline.Status;

namespace Flowline.Client;

/// <summary>Profiling (decision 90).</summary>
public sealed partial class RemoteManagerClient
{
    /// <summary>
    /// <c>GET /profiling</c>: every stream's writer and reader counters (frames, bytes, time blocked and
    /// waiting, skips, ring fill), the latency histograms of the readers that are workers, and every node's
    /// compute-time histogram, summarised in microseconds.
    /// </summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<ProfilingSnapshot> ProfilingAsync(CancellationToken cancellationToken = default) =>
        SendAsync<ProfilingSnapshot>(HttpMethod.Get, "profiling", null, ReadTimeout, cancellationToken);
}
