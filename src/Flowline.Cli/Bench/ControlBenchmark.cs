using System.Diagnostics;
using System.Net.ServerSentEvents;
using System.Text.Json.Nodes;
using Flowline.ControlPlane;
using Flowline.Runtime;

namespace Flowline.Cli.Bench;

/// <summary>How <c>flowline bench control</c> runs.</summary>
/// <param name="Document">The pipeline the server runs while it is measured.</param>
/// <param name="Duration">Seconds of each measurement.</param>
/// <param name="Concurrency">Clients polling <c>GET /status</c> at once, each as fast as it can.</param>
/// <param name="Subscribers">Clients following <c>GET /events</c>.</param>
/// <param name="EventRateHz">Events published per second during the fan-out measurement.</param>
internal sealed record ControlBenchOptions(string Document, double Duration, int Concurrency, int Subscribers, double EventRateHz);

/// <summary>What <c>flowline bench control</c> measured.</summary>
internal sealed record ControlBenchReport(
    MachineInfo Machine,
    string Document,
    int Workers,
    int Concurrency,
    double StatusRequestsPerSecond,
    LatencySummary StatusLatency,
    int Subscribers,
    int EventsPublished,
    long EventsReceived,
    LatencySummary EventDelay,
    long SubscribersCutOff);

/// <summary>
/// The control plane under load: a real server (Kestrel on a loopback port) running a real pipeline, with
/// clients in the same process. Measures the latency of <c>GET /status</c> under concurrent polling, then
/// the delay from publishing an event to its arrival at each of many SSE subscribers.
/// </summary>
internal sealed class ControlBenchmark(ControlBenchOptions options, TextWriter progress)
{
    public async Task<ControlBenchReport> RunAsync()
    {
        var steal = CpuTimes.Read();
        var ns = $"bench-control-{Environment.ProcessId}";
        await using var server = await ControlServer.StartAsync(options.Document, new ControlServerOptions
        {
            Port = 0,
            DiscoveryDirectory = "",
            Service = new ControlServiceOptions { Manager = new PipelineManagerOptions { Namespace = ns } },
        }).ConfigureAwait(false);
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 1024, UseProxy = false })
        {
            BaseAddress = server.Address,
            Timeout = Timeout.InfiniteTimeSpan,
        };
        (await http.PostAsync(new Uri("commands/start", UriKind.Relative), null).ConfigureAwait(false)).EnsureSuccessStatusCode();
        var workers = server.Service.Manager.Plan.Workers.Count;
        await Task.Delay(500).ConfigureAwait(false);

        progress.WriteLine($"GET /status from {options.Concurrency} concurrent clients for {options.Duration} s ({workers} workers running)");
        var (rate, status) = await StatusLoadAsync(http).ConfigureAwait(false);

        progress.WriteLine($"{options.Subscribers} subscribers on GET /events, {options.EventRateHz} events/s for {options.Duration} s");
        var (published, received, delay) = await FanOutAsync(http, server.Service).ConfigureAwait(false);

        return new ControlBenchReport(
            Bench.Machine.Describe(pinned: false, CpuTimes.Read().StealPercentSince(steal)),
            options.Document, workers, options.Concurrency, rate, status,
            options.Subscribers, published, received, delay, server.Service.Events.SubscribersCutOff);
    }

    private async Task<(double Rate, LatencySummary Latency)> StatusLoadAsync(HttpClient http)
    {
        var stop = Stopwatch.StartNew();
        var duration = TimeSpan.FromSeconds(options.Duration);
        var samples = new List<long>[options.Concurrency];
        var clients = Enumerable.Range(0, options.Concurrency).Select(async i =>
        {
            var mine = samples[i] = new List<long>(100_000);
            while (stop.Elapsed < duration)
            {
                var t0 = Stopwatch.GetTimestamp();
                using var response = await http.GetAsync(new Uri("status", UriKind.Relative)).ConfigureAwait(false);
                _ = await response.Content.ReadAsByteArrayAsync().ConfigureAwait(false);
                response.EnsureSuccessStatusCode();
                mine.Add((long)Stopwatch.GetElapsedTime(t0).TotalNanoseconds);
            }
        }).ToArray();
        await Task.WhenAll(clients).ConfigureAwait(false);
        var all = samples.SelectMany(s => s).ToArray();
        return (all.Length / stop.Elapsed.TotalSeconds, LatencySummary.Of(all));
    }

    private async Task<(int Published, long Received, LatencySummary Delay)> FanOutAsync(HttpClient http, ControlService service)
    {
        using var cancel = new CancellationTokenSource();
        var delays = new List<long>[options.Subscribers];
        var ready = new CountdownEvent(options.Subscribers);
        var subscribers = Enumerable.Range(0, options.Subscribers).Select(i => Task.Run(async () =>
        {
            var mine = delays[i] = [];
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri("events", UriKind.Relative));
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancel.Token).ConfigureAwait(false);
            response.EnsureSuccessStatusCode();
            using var stream = await response.Content.ReadAsStreamAsync(cancel.Token).ConfigureAwait(false);
            var first = true;
            try
            {
                await foreach (var item in SseParser.Create(stream).EnumerateAsync(cancel.Token).ConfigureAwait(false))
                {
                    if (first)
                    {
                        first = false;
                        ready.Signal();
                    }

                    if (item.EventType == "bench" && JsonNode.Parse(item.Data)?["sent"] is { } sent)
                    {
                        mine.Add((long)Stopwatch.GetElapsedTime(sent.GetValue<long>()).TotalNanoseconds);
                    }
                }
            }
            catch (OperationCanceledException)
            {
                // The measurement is over.
            }
        })).ToArray();

        if (!ready.Wait(TimeSpan.FromSeconds(30)))
        {
            throw new TimeoutException($"only {options.Subscribers - ready.CurrentCount} of {options.Subscribers} subscribers connected within 30 s");
        }

        var published = 0;
        var period = TimeSpan.FromSeconds(1 / options.EventRateHz);
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed.TotalSeconds < options.Duration)
        {
            service.Events.Publish("bench", new JsonObject { ["sent"] = Stopwatch.GetTimestamp(), ["n"] = published });
            published++;
            var next = period * published;
            if (next > clock.Elapsed)
            {
                await Task.Delay(next - clock.Elapsed).ConfigureAwait(false);
            }
        }

        await Task.Delay(500).ConfigureAwait(false);
        await cancel.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(subscribers).ConfigureAwait(false);
        var all = delays.SelectMany(d => d).ToArray();
        return (published, all.LongLength, LatencySummary.Of(all));
    }
}
