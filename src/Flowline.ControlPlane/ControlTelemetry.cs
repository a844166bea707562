using Flowline.Runtime;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Flowline.ControlPlane;

/// <summary>
/// The control plane's telemetry: the served pipeline's instruments (<see cref="ControlService.Metrics"/>)
/// and the .NET runtime's, exported by OpenTelemetry's Prometheus exporter at <c>GET /metrics</c>; and,
/// when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set, the same metrics and the lifecycle activities sent
/// over OTLP, configured by the standard <c>OTEL_*</c> variables.
/// </summary>
public static class ControlTelemetry
{
    /// <summary>The variable that turns the OTLP exporter on.</summary>
    public const string OtlpEndpointVariable = "OTEL_EXPORTER_OTLP_ENDPOINT";

    /// <summary>
    /// Registers OpenTelemetry for <paramref name="service"/>. Only the service's own <c>Flowline</c>
    /// meter is exported: other pipelines of the same process (managers made in code, other servers)
    /// publish meters of the same name, which their own exporters read.
    /// </summary>
    public static IServiceCollection AddControlTelemetry(this IServiceCollection services, ControlService service)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(service);
        var otlp = !string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable(OtlpEndpointVariable));
        var telemetry = services.AddOpenTelemetry().WithMetrics(metrics =>
        {
            metrics.AddMeter(PipelineMetrics.MeterName, "System.Runtime")
                .AddView(instrument => instrument.Meter.Name == PipelineMetrics.MeterName && !ReferenceEquals(instrument.Meter, service.Metrics.Meter) ? MetricStreamConfiguration.Drop : null)
                .AddPrometheusExporter(o => o.ScrapeResponseCacheDurationMilliseconds = 0);
            if (otlp)
            {
                metrics.AddOtlpExporter();
            }
        });
        if (otlp)
        {
            // Requests are spans too: a lifecycle operation is the child of the request that asked for it, and
            // without the request's span the default parent-based sampler would drop it (its parent, the
            // request's activity, would not be recorded).
            telemetry.WithTracing(tracing => tracing.AddAspNetCoreInstrumentation().AddSource(PipelineMetrics.MeterName).AddOtlpExporter());
        }

        return services;
    }

    /// <summary>
    /// For a program that runs pipelines without the control plane (<c>flowline run</c>): when
    /// <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set, sends every <c>Flowline</c> meter of the process and the
    /// lifecycle activities over OTLP until the result is disposed (which flushes them); null otherwise.
    /// </summary>
    public static IDisposable? StartOtlpExport()
    {
        if (string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable(OtlpEndpointVariable)))
        {
            return null;
        }

        var meters = Sdk.CreateMeterProviderBuilder().AddMeter(PipelineMetrics.MeterName, "System.Runtime").AddOtlpExporter().Build();
        var traces = Sdk.CreateTracerProviderBuilder().AddSource(PipelineMetrics.MeterName).AddOtlpExporter().Build();
        return new Both(meters, traces);
    }

    private sealed class Both(IDisposable first, IDisposable second) : IDisposable
    {
        public void Dispose()
        {
            try
            {
                first.Dispose();
            }
            finally
            {
                second.Dispose();
            }
        }
    }
}
