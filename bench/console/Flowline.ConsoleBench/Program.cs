// The browser console's cost (issue 16, docs/performance.md "Browser console"): a real `flowline serve` running
// examples/ao-basic, and headless Debian chromium pages driven by Playwright (nothing downloaded).
//
//   dotnet run -c Release --project bench/console/Flowline.ConsoleBench -- [--runs 3] [--seconds 15] [--settle 5]
//       [--consoles 0,1,10] [--document FILE] [--chromium /usr/bin/chromium]
//
// Each run starts its own server (a copy of the document in a namespace of its own), builds and starts the pipeline,
// then for each console count opens that many pages at /#runtime (one browser context each, like separate tabs of
// separate people), lets them settle and measures for --seconds: the CPU of the server process, of its workers and of
// the browser side (chromium and the Playwright driver), the pipeline's rate (frames the sink consumed per second)
// and its latency (the sink's `latency_us` from the frame's origin: median over one /status sample a second of the
// p50 and of the p99). Then one page opens a viewer on the 120x120 `wfs_image` at its highest rate (30 Hz) and the
// viewer's own draw rate and new frames per second are read from the page. Every phase prints /proc/loadavg.
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.Playwright;

var options = BenchOptions.Parse(args);
Environment.SetEnvironmentVariable("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
Console.WriteLine($"machine: {Environment.ProcessorCount} CPUs, {File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim()}");
Console.WriteLine($"document: {options.Document}; {options.Runs} run(s), {options.Seconds} s measured after {options.Settle} s settling per phase; consoles: {string.Join(", ", options.Consoles)}");
using var playwright = await Playwright.CreateAsync();
var results = new List<PhaseResult>();
for (var run = 1; run <= options.Runs; run++)
{
    await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
    {
        ExecutablePath = options.Chromium,
        Headless = true,
        Args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        Timeout = 60_000,
    });
    await using var server = await BenchServer.StartAsync(options.Document);
    Console.WriteLine($"run {run}: server pid {server.Pid} at {server.Url}");
    await server.CommandAsync("build");
    await server.CommandAsync("start");
    await Task.Delay(TimeSpan.FromSeconds(options.Settle));
    foreach (var count in options.Consoles)
    {
        var contexts = new List<IBrowserContext>();
        try
        {
            for (var i = 0; i < count; i++)
            {
                var context = await browser.NewContextAsync(new BrowserNewContextOptions { ViewportSize = new ViewportSize { Width = 1360, Height = 860 } });
                contexts.Add(context);
                var page = await context.NewPageAsync();
                await page.GotoAsync(server.Url + "#runtime");
                await page.Locator("#workers tbody tr").First.WaitForAsync(new LocatorWaitForOptions { Timeout = 30_000 });
            }

            await Task.Delay(TimeSpan.FromSeconds(options.Settle));
            var result = await Measure.PhaseAsync(run, $"{count} console(s)", server, options.Seconds, null);
            results.Add(result);
            Console.WriteLine(result);
        }
        finally
        {
            foreach (var context in contexts)
            {
                await context.CloseAsync();
            }
        }
    }

    // One viewer of the 120x120 float32 wavefront-sensor image at the highest rate the console offers.
    var viewerContext = await browser.NewContextAsync(new BrowserNewContextOptions { ViewportSize = new ViewportSize { Width = 1360, Height = 860 } });
    try
    {
        var page = await viewerContext.NewPageAsync();
        await page.GotoAsync(server.Url + "#viewers");
        await page.Locator("#viewer-stream option[value='wfs_image']").WaitForAsync(new LocatorWaitForOptions { State = WaitForSelectorState.Attached, Timeout = 30_000 });
        await page.SelectOptionAsync("#viewer-stream", "wfs_image");
        await page.FillAsync("#viewer-rate", "30");
        await page.ClickAsync("#viewer-form button[type=submit]");
        await page.Locator(".viewer[data-stream='wfs_image'] [data-stat='viewer rate']").WaitForAsync(new LocatorWaitForOptions { Timeout = 30_000 });
        await Task.Delay(TimeSpan.FromSeconds(options.Settle));
        var result = await Measure.PhaseAsync(run, "1 viewer 120x120 @30 Hz", server, options.Seconds, page);
        results.Add(result);
        Console.WriteLine(result);
    }
    finally
    {
        await viewerContext.CloseAsync();
    }
}

Console.WriteLine();
Console.WriteLine("ranges over runs (min-max):");
foreach (var phase in results.GroupBy(r => r.Phase))
{
    string R(Func<PhaseResult, double?> f, string format)
    {
        var values = phase.Select(f).OfType<double>().ToList();
        return values.Count == 0 ? "-" : $"{values.Min().ToString(format, CultureInfo.InvariantCulture)}-{values.Max().ToString(format, CultureInfo.InvariantCulture)}";
    }

    Console.WriteLine($"  {phase.Key,-24} server CPU {R(r => r.ServerCpuPercent, "0.0")} %, workers CPU {R(r => r.WorkersCpuPercent, "0")} %, browser CPU {R(r => r.BrowserCpuPercent, "0")} %, " +
        $"rate {R(r => r.RateHz, "0")} Hz, latency p50 {R(r => r.LatencyP50Us, "0")} us, p99 {R(r => r.LatencyP99Us, "0")} us" +
        (phase.Any(r => r.ViewerFps is not null) ? $", viewer {R(r => r.ViewerFps, "0.0")} fps, new frames {R(r => r.ViewerNewFramesPerSecond, "0.0")}/s" : "") +
        $"; load {string.Join(" | ", phase.Select(r => r.Load))}");
}

return 0;

/// <summary>The command line.</summary>
internal sealed record BenchOptions(int Runs, int Seconds, int Settle, int[] Consoles, string Document, string Chromium)
{
    public static BenchOptions Parse(string[] args)
    {
        var o = new BenchOptions(3, 15, 5, [0, 1, 10], Path.Combine(AppContext.BaseDirectory, "examples", "ao-basic", "pipeline.yaml"), "/usr/bin/chromium");
        for (var i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            o = args[i] switch
            {
                "--runs" => o with { Runs = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--seconds" => o with { Seconds = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--settle" => o with { Settle = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--consoles" => o with { Consoles = [.. Next().Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture))] },
                "--document" => o with { Document = Path.GetFullPath(Next()) },
                "--chromium" => o with { Chromium = Next() },
                _ => throw new ArgumentException($"unknown option {args[i]}; options: --runs --seconds --settle --consoles --document --chromium"),
            };
        }

        return o;
    }
}

/// <summary>The figures of one phase of one run.</summary>
internal sealed record PhaseResult(int Run, string Phase, double ServerCpuPercent, double WorkersCpuPercent, double BrowserCpuPercent, double RateHz,
    double? LatencyP50Us, double? LatencyP99Us, double? ViewerFps, double? ViewerNewFramesPerSecond, string Load)
{
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"  run {Run} {Phase,-24} server CPU {ServerCpuPercent,5:0.0} %  workers {WorkersCpuPercent,4:0} %  browser {BrowserCpuPercent,4:0} %  rate {RateHz,7:0} Hz  " +
        $"latency p50 {LatencyP50Us,6:0} us p99 {LatencyP99Us,6:0} us{(ViewerFps is null ? "" : $"  viewer {ViewerFps:0.0} fps, {ViewerNewFramesPerSecond:0.0} new frames/s")}  load {Load}");
}

/// <summary>Measures one phase.</summary>
internal static class Measure
{
    public static async Task<PhaseResult> PhaseAsync(int run, string phase, BenchServer server, int seconds, IPage? viewer)
    {
        var cpu0 = Cpu.Sample(server.Pid);
        var status0 = await server.StatusAsync();
        var watch = Stopwatch.StartNew();
        var p50 = new List<double>();
        var p99 = new List<double>();
        var fps = new List<double>();
        var seen0 = viewer is null ? 0 : await FramesSeenAsync(viewer);
        while (watch.Elapsed < TimeSpan.FromSeconds(seconds))
        {
            await Task.Delay(1000);
            var status = await server.StatusAsync();
            if (Sink(status)?["latency_us"] is JsonObject latency && latency["p50"]?.GetValue<double>() is > 0 and var median)
            {
                p50.Add(median);
                p99.Add(latency["p99"]!.GetValue<double>());
            }

            if (viewer is not null && await viewer.Locator(".viewer[data-stream='wfs_image'] [data-stat='viewer rate']").TextContentAsync() is { } text
                && double.TryParse(text.Split(' ')[0], NumberStyles.Float, CultureInfo.InvariantCulture, out var rate))
            {
                fps.Add(rate);
            }
        }

        var status1 = await server.StatusAsync();
        var elapsed = watch.Elapsed.TotalSeconds;
        var cpu1 = Cpu.Sample(server.Pid);
        var seen1 = viewer is null ? 0 : await FramesSeenAsync(viewer);
        static long Frames(JsonNode status) => Sink(status)?["frames_consumed"]?.GetValue<long>() ?? 0;
        double Percent(double a, double b) => Math.Round(100 * (b - a) / elapsed, 1);
        return new PhaseResult(run, phase, Percent(cpu0.Server, cpu1.Server), Percent(cpu0.Workers, cpu1.Workers), Percent(cpu0.Browser, cpu1.Browser),
            (Frames(status1) - Frames(status0)) / elapsed, Median(p50), Median(p99),
            viewer is null ? null : fps.Average(), viewer is null ? null : (seen1 - seen0) / elapsed,
            File.ReadAllText("/proc/loadavg").Split(' ')[0]);
    }

    private static JsonObject? Sink(JsonNode status) => status["sinks"] is JsonObject sinks ? sinks.Select(s => s.Value as JsonObject).FirstOrDefault() : null;

    private static double? Median(List<double> values) => values.Count == 0 ? null : values.Order().ElementAt(values.Count / 2);

    private static async Task<long> FramesSeenAsync(IPage page) =>
        long.Parse(await page.Locator(".viewer[data-stream='wfs_image'] [data-stat='frames seen']").TextContentAsync() ?? "0", CultureInfo.InvariantCulture);
}

/// <summary>CPU seconds used so far by the server process, by its descendants (the workers) and by this program's other descendants (chromium, the Playwright driver).</summary>
internal static class Cpu
{
    public static (double Server, double Workers, double Browser) Sample(int serverPid)
    {
        var parents = new Dictionary<int, int>();
        var seconds = new Dictionary<int, double>();
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(directory), out var pid))
            {
                continue;
            }

            try
            {
                // pid (comm) state ppid ... utime(14) stime(15): fields after the comm's closing parenthesis.
                var stat = File.ReadAllText(Path.Combine(directory, "stat"));
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                parents[pid] = int.Parse(fields[1], CultureInfo.InvariantCulture);
                seconds[pid] = (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
            {
                // The process ended while it was read.
            }
        }

        bool Under(int pid, int ancestor)
        {
            for (var p = pid; p > 1 && parents.TryGetValue(p, out var parent); p = parent)
            {
                if (parent == ancestor)
                {
                    return true;
                }
            }

            return false;
        }

        var self = Environment.ProcessId;
        double server = seconds.GetValueOrDefault(serverPid), workers = 0, browser = 0;
        foreach (var (pid, used) in seconds)
        {
            if (Under(pid, serverPid))
            {
                workers += used;
            }
            else if (pid != serverPid && Under(pid, self))
            {
                browser += used;
            }
        }

        return (server, workers, browser);
    }
}

/// <summary>`flowline serve` as a child process, on a free loopback port, with a namespace and a discovery directory of its own; disposing it sends SIGTERM and waits.</summary>
internal sealed class BenchServer : IAsyncDisposable
{
    private readonly Process process;
    private readonly string directory;
    private readonly HttpClient http;

    private BenchServer(Process process, string directory, string url)
    {
        this.process = process;
        this.directory = directory;
        Url = url;
        http = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(60) };
    }

    public int Pid => process.Id;

    public string Url { get; }

    public static async Task<BenchServer> StartAsync(string document)
    {
        var directory = Path.Combine(Path.GetTempPath(), "flowline-console-bench-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(directory);
        var yaml = File.ReadAllLines(document).Select(l => l.StartsWith("namespace:", StringComparison.Ordinal) ? $"namespace: cbench-{Path.GetFileName(directory)[^8..]}" : l);
        var copy = Path.Combine(directory, "pipeline.yaml");
        File.WriteAllLines(copy, yaml);
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in (string[])[Path.Combine(AppContext.BaseDirectory, "Flowline.Cli.dll"), "serve", copy, "--host", "127.0.0.1", "--port", "0"])
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["XDG_RUNTIME_DIR"] = directory;
        info.Environment.Remove("FLOWLINE_TOKEN");
        info.Environment.Remove("FLOWLINE_TOKEN_FILE");
        var process = Process.Start(info) ?? throw new InvalidOperationException("dotnet did not start");
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                Console.Error.WriteLine("server: " + e.Data);
            }
        };
        process.BeginErrorReadLine();
        var url = new TaskCompletionSource<string>();
        process.OutputDataReceived += (_, e) =>
        {
            // "serving FILE at URL (namespace NS; ...)"
            if (e.Data is { } line && line.StartsWith("serving ", StringComparison.Ordinal) && line.IndexOf(" at ", StringComparison.Ordinal) is > 0 and var at)
            {
                url.TrySetResult(line[(at + 4)..line.IndexOf(" (", at, StringComparison.Ordinal)]);
            }
        };
        process.BeginOutputReadLine();
        try
        {
            var address = await url.Task.WaitAsync(TimeSpan.FromSeconds(60));
            return new BenchServer(process, directory, address.TrimEnd('/') + "/");
        }
        catch
        {
            await new BenchServer(process, directory, "http://127.0.0.1/").DisposeAsync();
            throw;
        }
    }

    public async Task CommandAsync(string command)
    {
        using var response = await http.PostAsJsonAsync("commands/" + command, new JsonObject());
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"{command}: HTTP {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }
    }

    public async Task<JsonNode> StatusAsync() => JsonNode.Parse(await http.GetStringAsync("status"))!;

    public async ValueTask DisposeAsync()
    {
        http.Dispose();
        if (!process.HasExited)
        {
            // SIGTERM: the server shuts the pipeline down and removes its streams and its discovery record.
            using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)]))
            {
                await kill.WaitForExitAsync();
            }

            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            try
            {
                await process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
            }
        }

        process.Dispose();
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
