using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace Flowline.Console.Tests;

/// <summary>
/// The console in a real browser against a served ao-basic pipeline with real workers, clicked as a person
/// would. With FLOWLINE_CONSOLE_SCREENSHOTS set to a directory, the tests also save a screenshot of each view there
/// (docs/images/ is made this way).
/// </summary>
[Collection(nameof(ConsoleCollection))]
public sealed class PipelineConsoleTests(BrowserFixture browser) : IClassFixture<BrowserFixture>
{
    private static readonly LocatorAssertionsToHaveTextOptions Slow = new() { Timeout = 30_000 };

    [Fact]
    public async Task Pipeline_IsDrivenFromTheBrowser_FromStartToShutdown()
    {
        await using var served = await ConsoleServer.StartAsync();
        var page = await browser.NewPageAsync();
        var statusRequests = 0;
        page.Request += (_, r) =>
        {
            if (new Uri(r.Url).AbsolutePath == "/status")
            {
                Interlocked.Increment(ref statusRequests);
            }
        };
        try
        {
            await page.GotoAsync(served.Url);
            await Expect(page.Locator("body[data-ready=true]")).ToBeAttachedAsync();
            await Expect(page.Locator("#state")).ToHaveTextAsync("initialized");
            await Expect(page.Locator("#doc-path")).ToHaveTextAsync(served.ConfigPath);

            // Only what the state machine allows is enabled.
            await Expect(page.Locator("button[data-command=build]")).ToBeEnabledAsync();
            await Expect(page.Locator("button[data-command=pause]")).ToBeDisabledAsync();
            await Expect(page.Locator("button[data-command=resume]")).ToBeDisabledAsync();

            await page.ClickAsync("button[data-command=build]");
            await Expect(page.Locator("#state")).ToHaveTextAsync("built", Slow);
            await Expect(page.Locator("button[data-command=build]")).ToBeDisabledAsync();
            await page.ClickAsync("button[data-command=start]");
            await Expect(page.Locator("#state")).ToHaveTextAsync("running", Slow);
            await Screenshot(page, "control");

            // The worker table's rates rise above zero, pushed by the event stream.
            await page.ClickAsync("#tabs button[data-tab=runtime]");
            var rate = page.Locator("#workers tr[data-worker=reconstruct] td.rate");
            await WaitUntilAsync(async () => double.TryParse(await rate.TextContentAsync(), System.Globalization.CultureInfo.InvariantCulture, out var hz) && hz > 0, "the reconstructor's rate is above zero");
            await Expect(page.Locator("#workers tr[data-worker=reconstruct] .spark canvas")).ToBeAttachedAsync(new() { Timeout = 30_000 });
            // Health, CPU and memory come with the workers' events, the streams' frames and fill with stream_metrics:
            // the table moves on without the page asking /status.
            await Expect(page.Locator("#workers tr[data-worker=reconstruct] td:nth-child(3)")).ToHaveTextAsync("active", Slow);
            await WaitUntilAsync(async () => (await page.Locator("#workers tr[data-worker=reconstruct] td:nth-child(11)").TextContentAsync() ?? "").EndsWith(" %", StringComparison.Ordinal), "the reconstructor's CPU is shown");
            const string SlopesFrames = "() => [...document.querySelectorAll('#streams tbody tr')].find(r => r.cells[0].textContent === 'slopes')?.cells[1].textContent ?? ''";
            var framesBefore = await page.EvaluateAsync<string>(SlopesFrames);
            await WaitUntilAsync(async () => await page.EvaluateAsync<string>(SlopesFrames) is { Length: > 0 } now && now != framesBefore, "the slopes stream's frame count moves on");
            Assert.Equal(0, Volatile.Read(ref statusRequests));
            await Screenshot(page, "runtime");

            // A viewer of the wavefront-sensor image draws non-blank pixels that change between frames; a 1D viewer beside it.
            await page.ClickAsync("#tabs button[data-tab=viewers]");
            await page.SelectOptionAsync("#viewer-stream", "wfs_image");
            await page.FillAsync("#viewer-rate", "10");
            await page.ClickAsync("#viewer-form button[type=submit]");
            await page.SelectOptionAsync("#viewer-stream", "slopes");
            await page.ClickAsync("#viewer-form button[type=submit]");
            var canvas = page.Locator(".viewer[data-stream=wfs_image] canvas.frame");
            await Expect(canvas).ToBeVisibleAsync();
            await Expect(page.Locator(".viewer[data-stream=wfs_image] dd[data-stat=shape]")).ToHaveTextAsync("[120, 120]");
            await Expect(page.Locator(".viewer[data-stream=slopes] .uplot")).ToBeVisibleAsync();
            var first = await PixelsAsync(page);
            Assert.True(first.NonBlank > 120 * 120 / 2, $"the image has {first.NonBlank} coloured pixels of {120 * 120}");
            await WaitUntilAsync(async () => (await PixelsAsync(page)).Hash != first.Hash, "the image changes between two frames");
            await Expect(page.Locator(".viewer[data-stream=wfs_image] dd[data-stat='stream rate']")).ToContainTextAsync("Hz", new() { Timeout = 30_000 });
            await Screenshot(page, "viewers");

            // The graph: laid out, edges with their rates.
            await page.ClickAsync("#tabs button[data-tab=graph]");
            await Expect(page.Locator("#graph g.node[data-node=reconstruct]")).ToBeVisibleAsync();
            await Expect(page.Locator("#graph text.rate").First).ToContainTextAsync("Hz", new() { Timeout = 30_000 });
            await page.ClickAsync("#graph g.node[data-node=reconstruct]");
            await Expect(page.Locator("#node-details")).ToContainTextAsync("throughput_hz");
            await Screenshot(page, "graph");

            // Pause and resume.
            await page.ClickAsync("#tabs button[data-tab=control]");
            await page.ClickAsync("button[data-command=pause]");
            await Expect(page.Locator("#state")).ToHaveTextAsync("paused", Slow);
            await Expect(page.Locator("button[data-command=pause]")).ToBeDisabledAsync();
            await page.ClickAsync("button[data-command=resume]");
            await Expect(page.Locator("#state")).ToHaveTextAsync("running", Slow);

            // A killed worker process: the failure and its message, as the server recorded it.
            await page.ClickAsync("#tabs button[data-tab=runtime]");
            var pidText = await page.Locator("#workers tr[data-worker=flatten] td:nth-child(4)").TextContentAsync();
            var pid = int.Parse(pidText!, System.Globalization.CultureInfo.InvariantCulture);
            using (var worker = Process.GetProcessById(pid))
            {
                worker.Kill(); // SIGKILL
            }

            await Expect(page.Locator("#state")).ToHaveTextAsync("failed", Slow);
            var failure = page.Locator("#failures [data-failure=flatten] .message");
            await Expect(failure).Not.ToBeEmptyAsync(new() { Timeout = 30_000 });
            using var http = new HttpClient { BaseAddress = served.Server.Address, Timeout = TimeSpan.FromSeconds(30) };
            var status = await http.GetFromJsonAsync<JsonObject>("/status");
            var recorded = status!["failures"]!.AsArray().Single(f => (string?)f!["kernel"] == "flatten")!;
            await Expect(failure).ToHaveTextAsync((string)recorded["error"]!);
            await Expect(page.Locator("#workers tr[data-worker=flatten]")).ToHaveClassAsync(new System.Text.RegularExpressions.Regex("bad"));
            await page.ClickAsync("#tabs button[data-tab=events]");
            await Expect(page.Locator("#events li.failure").First).ToBeVisibleAsync();
            await page.CheckAsync("#events-failures");
            await Screenshot(page, "events");

            // Restart brings it back; shut down.
            await page.ClickAsync("#tabs button[data-tab=control]");
            await page.ClickAsync("button[data-command=restart]");
            await Expect(page.Locator("#state")).ToHaveTextAsync("running", Slow);
            await page.ClickAsync("#tabs button[data-tab=runtime]");
            await Expect(page.Locator("#failures [data-failure=flatten]")).ToHaveCountAsync(0, new() { Timeout = 30_000 });
            await page.ClickAsync("#tabs button[data-tab=control]");
            await page.ClickAsync("button[data-command=shutdown]");
            await Expect(page.Locator("#state")).ToHaveTextAsync("stopped", Slow);
            await Expect(page.Locator("button[data-command=start]")).ToBeEnabledAsync();
            Assert.True(browser.PageErrors[page].Count == 0, string.Join("\n", browser.PageErrors[page]));
        }
        finally
        {
            await page.Context.CloseAsync();
        }
    }

    [Fact]
    public async Task YamlError_IsMarkedAtItsLine_AndTheFixedDocumentIsApplied()
    {
        await using var served = await ConsoleServer.StartAsync();
        var page = await browser.NewPageAsync();
        try
        {
            await page.GotoAsync(served.Url + "#document");
            await Expect(page.Locator("body[data-ready=true]")).ToBeAttachedAsync();
            using var http = new HttpClient { BaseAddress = served.Server.Address, Timeout = TimeSpan.FromSeconds(30) };
            var yaml = await http.GetStringAsync("/document/yaml");
            var lines = yaml.Split('\n');
            var dtypeLine = Array.FindIndex(lines, l => l.Contains("dtype: float32", StringComparison.Ordinal)) + 1;
            var leakLine = Array.FindIndex(lines, l => l.Contains("leak: 0.99", StringComparison.Ordinal)) + 1;
            Assert.True(dtypeLine > 0 && leakLine > 0, yaml);

            var editorLine = page.Locator(".CodeMirror-code > div").Nth(dtypeLine - 1).Locator(".CodeMirror-line");
            await Expect(editorLine).ToHaveTextAsync(lines[dtypeLine - 1]);
            await editorLine.ClickAsync();
            await page.Keyboard.PressAsync("End");
            await page.Keyboard.TypeAsync("x");
            var error = page.Locator($"#yaml-errors li[data-line='{dtypeLine}']");
            await Expect(error).ToContainTextAsync("float32x");
            await Expect(page.Locator(".CodeMirror-code > div").Nth(dtypeLine - 1)).ToHaveClassAsync(new System.Text.RegularExpressions.Regex("line-error"));
            await Expect(page.Locator(".CodeMirror-lint-marker-error")).ToHaveCountAsync(1);
            await Expect(page.Locator("#doc-apply")).ToBeDisabledAsync();
            await Screenshot(page, "document");

            await page.Keyboard.PressAsync("Backspace");
            await Expect(page.Locator("#yaml-errors li")).ToHaveCountAsync(0);
            // The editor holds the file's own text: "leak: 0.99" may be followed by more on its line ("{leak: 0.99, gain: 0.3}").
            var leak = page.Locator(".CodeMirror-code > div").Nth(leakLine - 1).Locator(".CodeMirror-line");
            await leak.ClickAsync();
            await page.Keyboard.PressAsync("End");
            var leakText = lines[leakLine - 1];
            for (var i = leakText.IndexOf("leak: 0.99", StringComparison.Ordinal) + "leak: 0.99".Length; i < leakText.Length; i++)
            {
                await page.Keyboard.PressAsync("ArrowLeft");
            }

            await page.Keyboard.TypeAsync("5");
            await Expect(page.Locator("#doc-status")).ToHaveTextAsync("valid; not applied yet");
            await Expect(page.Locator("#doc-apply")).ToBeEnabledAsync();
            await page.ClickAsync("#doc-apply");
            await Expect(page.Locator("#doc-status")).ToHaveTextAsync("applied: revision 2");
            var document = await http.GetFromJsonAsync<JsonObject>("/document");
            var integrate = document!["document"]!["kernels"]!.AsArray().Single(k => (string?)k!["name"] == "integrate")!;
            Assert.Equal(0.995, (double)integrate["parameters"]!["leak"]!);

            // The tables: a stream added through its dialog is validated and applied.
            await page.Locator("#doc-tables h3", new() { HasText = "Streams" }).Locator("button").ClickAsync();
            await page.FillAsync("#entry-fields input[name=name]", "spare");
            await page.FillAsync("#entry-fields input[name=shape]", "4, 4");
            await page.SelectOptionAsync("#entry-fields select[name=dtype]", "float64");
            await page.ClickAsync("#entry-ok");
            await Expect(page.Locator("#table-shared_memory tr[data-name=spare]")).ToBeVisibleAsync();
            await Expect(page.Locator("#tables-apply")).ToBeEnabledAsync();
            await page.ClickAsync("#tables-apply");
            await Expect(page.Locator("#doc-status")).ToHaveTextAsync("applied: revision 3");
            Assert.True(browser.PageErrors[page].Count == 0, string.Join("\n", browser.PageErrors[page]));
        }
        finally
        {
            await page.Context.CloseAsync();
        }
    }

    internal static async Task Screenshot(IPage page, string name)
    {
        if (Environment.GetEnvironmentVariable("FLOWLINE_CONSOLE_SCREENSHOTS") is { Length: > 0 } directory)
        {
            Directory.CreateDirectory(directory);
            await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(directory, $"console-{name}.png") });
        }
    }

    private sealed record Pixels(int NonBlank, long Hash);

    private static async Task<Pixels> PixelsAsync(IPage page)
    {
        var result = await page.EvaluateAsync<double[]>(@"() => {
            const c = document.querySelector('.viewer[data-stream=wfs_image] canvas.frame');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let coloured = 0, hash = 0;
            for (let i = 0; i < d.length; i += 4) {
                if (d[i + 3] > 0 && (d[i] | d[i + 1] | d[i + 2]) !== 0) coloured++;
                hash = (hash * 31 + d[i] * 7 + d[i + 1] * 3 + d[i + 2]) % 1000000007;
            }
            return [coloured, hash];
        }");
        return new Pixels((int)result[0], (long)result[1]);
    }

    internal static async Task WaitUntilAsync(Func<Task<bool>> condition, string what, double seconds = 30)
    {
        var watch = Stopwatch.StartNew();
        while (!await condition())
        {
            if (watch.Elapsed.TotalSeconds > seconds)
            {
                Assert.Fail($"timed out after {seconds} s waiting until {what}");
            }

            await Task.Delay(100);
        }
    }
}

/// <summary>The console tests run one at a time: each starts worker processes and a browser on a 2-core machine.</summary>
[CollectionDefinition(nameof(ConsoleCollection), DisableParallelization = true)]
public sealed class ConsoleCollection;
