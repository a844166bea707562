using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Flowline.Cli.Tests;

/// <summary>
/// <c>flowline serve</c> with the standard <c>OTEL_*</c> variables sends its metrics and lifecycle traces over
/// OTLP/HTTP. The receiver is an HTTP listener in the test that keeps what it is sent (no OpenTelemetry
/// collector is packaged for this machine); OTLP's protobuf carries names as plain UTF-8, so the
/// instrument and span names can be found in the bodies.
/// </summary>
public sealed partial class ServeCommandTests
{
    [Fact]
    public async Task Serve_WithAnOtlpEndpoint_SendsTheFlowlineMetricsAndLifecycleTraces()
    {
        using var receiver = new OtlpReceiver();
        var otlp = new Dictionary<string, string>(environment)
        {
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.Url,
            ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
            ["OTEL_METRIC_EXPORT_INTERVAL"] = "300",
            ["OTEL_BSP_SCHEDULE_DELAY"] = "300",
            ["OTEL_SERVICE_NAME"] = "flowline-otlp-test",
        };
        var server = Cli.Start(otlp, ["serve", Document, "--port", "0", "--namespace", ns]);
        servers.Add(server);
        var first = await server.StandardOutput.ReadLineAsync(TestContext.Current.CancellationToken).AsTask().WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
        var url = Served.ServingLine().Match(first ?? "").Groups["url"].Value.TrimEnd('/');
        Assert.False(string.IsNullOrEmpty(url), $"unexpected first line: {first}");

        AssertExit(0, Cli.Run(otlp, "build", "--url", url));
        AssertExit(0, Cli.Run(otlp, "start", "--url", url));

        var metrics = await receiver.WaitForAsync("/v1/metrics", "flowline.stream.frames.published", TimeSpan.FromSeconds(30));
        Assert.Contains("flowline.pipeline.state", metrics, StringComparison.Ordinal);
        Assert.Contains("flowline-otlp-test", metrics, StringComparison.Ordinal);
        await receiver.WaitForAsync("/v1/traces", "flowline.pipeline.start", TimeSpan.FromSeconds(30));
        // Its parent, the request's span: it ends after its child, so it may come in a later export batch.
        await receiver.WaitForAsync("/v1/traces", "/commands/start", TimeSpan.FromSeconds(30));
        await receiver.WaitForAsync("/v1/traces", "flowline.pipeline.build", TimeSpan.FromSeconds(30));

        Terminate(server);
        Leftovers.AssertNothingLeft(ns);
    }

    /// <summary>Accepts OTLP/HTTP posts on a loopback port and keeps each body (as Latin-1 text, for searching) by path.</summary>
    private sealed class OtlpReceiver : IDisposable
    {
        private readonly HttpListener listener = new();
        private readonly List<(string Path, string Body)> received = [];
        private readonly Task loop;

        public OtlpReceiver()
        {
            using (var probe = new TcpListener(IPAddress.Loopback, 0))
            {
                probe.Start();
                Url = $"http://127.0.0.1:{((IPEndPoint)probe.LocalEndpoint).Port}";
                probe.Stop();
            }

            listener.Prefixes.Add(Url + "/");
            listener.Start();
            loop = Task.Run(ServeAsync);
        }

        public string Url { get; }

        /// <summary>The body of the first post to <paramref name="path"/> that contains <paramref name="text"/>.</summary>
        public async Task<string> WaitForAsync(string path, string text, TimeSpan limit)
        {
            var deadline = DateTime.UtcNow + limit;
            while (DateTime.UtcNow < deadline)
            {
                lock (received)
                {
                    foreach (var (p, body) in received)
                    {
                        if (p == path && body.Contains(text, StringComparison.Ordinal))
                        {
                            return body;
                        }
                    }
                }

                await Task.Delay(100, TestContext.Current.CancellationToken);
            }

            lock (received)
            {
                Assert.Fail($"no post to {path} containing '{text}' within {limit.TotalSeconds} s; received: {string.Join(", ", received.Select(r => $"{r.Path} ({r.Body.Length} bytes)"))}");
                return "";
            }
        }

        private async Task ServeAsync()
        {
            while (listener.IsListening)
            {
                HttpListenerContext context;
                try
                {
                    context = await listener.GetContextAsync();
                }
                catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
                {
                    return;
                }

                using var body = new MemoryStream();
                await context.Request.InputStream.CopyToAsync(body);
                lock (received)
                {
                    received.Add((context.Request.Url!.AbsolutePath, Encoding.Latin1.GetString(body.ToArray())));
                }

                context.Response.StatusCode = 200;
                context.Response.ContentType = "application/x-protobuf";
                context.Response.Close();
            }
        }

        public void Dispose()
        {
            listener.Stop();
            listener.Close();
            loop.Wait(TimeSpan.FromSeconds(5));
        }
    }
}
