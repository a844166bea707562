using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;

namespace Flowline.ControlPlane;

/// <summary>The profiling endpoints (decision 90): <c>GET /profiling</c>.</summary>
public static partial class ControlApi
{
    /// <summary>How long a profiling request waits for an operation in progress before it answers with the last snapshot (<c>stale: true</c>).</summary>
    private static readonly TimeSpan ProfilingWait = TimeSpan.FromMilliseconds(100);

    private static void MapProfiling(RouteGroupBuilder read, RouteGroupBuilder control, ControlService service, ControlApiOptions options)
    {
        _ = control;
        _ = options;

        // The counters of every stream and the histograms of every worker, read from shared memory.
        read.MapGet("/profiling", () => Reply(service, () => service.Manager.Profiling(ProfilingWait)));
    }
}
