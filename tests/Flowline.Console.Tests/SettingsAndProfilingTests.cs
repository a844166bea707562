using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace Flowline.Console.Tests;

/// <summary>
/// The Settings and Profiling views against a running ao-basic pipeline (whose <c>integrate</c> node, a
/// cpu.leaky_integrator, has the live settings <c>leak</c> and <c>gain</c>), clicked as a person would.
/// </summary>
[Collection(nameof(ConsoleCollection))]
public sealed class SettingsAndProfilingTests(BrowserFixture browser) : IClassFixture<BrowserFixture>
{
    private static readonly LocatorAssertionsToHaveTextOptions Slow = new() { Timeout = 30_000 };
    private static readonly LocatorAssertionsToContainTextOptions SlowContains = new() { Timeout = 30_000 };

    [Fact]
    public async Task LiveSetting_IsChangedThroughItsWidget_AndABadOrOutOfBoundsValueIsRefusedAtItsField_AndProfilingShowsLatencyAndTraces()
    {
        await using var served = await ConsoleServer.StartAsync();
        var page = await browser.NewPageAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = served.Server.Address, Timeout = TimeSpan.FromSeconds(60) };
            await page.GotoAsync(served.Url);
            await Expect(page.Locator("body[data-ready=true]")).ToBeAttachedAsync();
            await page.ClickAsync("button[data-command=build]");
            await Expect(page.Locator("#state")).ToHaveTextAsync("built", Slow);
            await page.ClickAsync("button[data-command=start]");
            await Expect(page.Locator("#state")).ToHaveTextAsync("running", Slow);

            // Settings: one widget per field of the schema; a live field is enabled, a field that is not live is
            // disabled with the reason.
            await page.ClickAsync("#tabs button[data-tab=settings]");
            var gainRow = page.Locator("#settings tr[data-node=integrate][data-field=gain]");
            var gain = gainRow.Locator("input[name=gain]");
            await Expect(gain).ToBeEnabledAsync();
            await Expect(gain).ToHaveValueAsync("0.3");
            await Expect(page.Locator("#settings tr.not-live input, #settings tr.not-live select").First).ToBeDisabledAsync();
            await Expect(page.Locator("#settings tr.not-live").First).ToContainTextAsync("not live");

            // A change through the widget is acknowledged and is what GET /settings then says.
            await gain.FillAsync("0.25");
            await gain.PressAsync("Enter");
            await Expect(gainRow.Locator("[data-ack=gain]")).ToContainTextAsync("applied: 0.25", SlowContains);
            Assert.Equal(0.25, await GainAsync(http));
            await Expect(page.Locator("#settings-feed")).ToHaveTextAsync("● live updates", Slow);

            // A change by another client arrives on /settings/events and updates the widget.
            using (var patch = new HttpRequestMessage(HttpMethod.Patch, "/settings/integrate") { Content = JsonContent.Create(new JsonObject { ["gain"] = 0.2 }) })
            {
                (await http.SendAsync(patch)).EnsureSuccessStatusCode();
            }

            await Expect(gain).ToHaveValueAsync("0.2", new() { Timeout = 30_000 });
            await Expect(gainRow.Locator("[data-ack=gain]")).ToContainTextAsync("now 0.2 (was 0.25", SlowContains);
            await PipelineConsoleTests.Screenshot(page, "settings");

            // A value that is not a number is refused by the server; the error is shown at its field, and
            // the value is unchanged.
            await gain.FillAsync("lots");
            await gain.PressAsync("Enter");
            var ack = gainRow.Locator("[data-ack=gain]");
            await Expect(ack).ToHaveClassAsync(new System.Text.RegularExpressions.Regex("error"), new() { Timeout = 30_000 });
            await Expect(ack).ToContainTextAsync("'gain' must be a number, not \"lots\"");
            Assert.Equal(0.2, await GainAsync(http));
            await Expect(gain).ToHaveValueAsync("0.2");

            // A number outside the declared bounds (gain: 0 to 2, a slider up to 2) is refused by the server: its error
            // is shown at the field, the widget shows the value the server kept, and the server's value is unchanged.
            await Expect(gainRow.Locator("input[type=range]")).ToHaveAttributeAsync("max", "2");
            await gain.FillAsync("5");
            await gain.PressAsync("Enter");
            await Expect(ack).ToContainTextAsync("'gain' must be a finite number at least 0 at most 2, not 5", SlowContains);
            await Expect(ack).ToHaveClassAsync(new System.Text.RegularExpressions.Regex("error"));
            await Expect(gain).ToHaveValueAsync("0.2");
            Assert.Equal(0.2, await GainAsync(http));

            // Profiling: a stream's reader shows non-empty latency percentiles once the pipeline runs.
            await page.ClickAsync("#tabs button[data-tab=profiling]");
            var reader = page.Locator("#profiling-readers tr[data-stream=slopes]").First;
            await PipelineConsoleTests.WaitUntilAsync(
                async () => await reader.CountAsync() > 0
                    && double.TryParse(await reader.Locator("td:nth-child(10)").TextContentAsync(), CultureInfo.InvariantCulture, out var p50) && p50 > 0,
                "the slopes reader's p50 latency is above zero");
            await Expect(page.Locator("#profiling-nodes tr[data-node=reconstruct] td:nth-child(3)")).Not.ToHaveTextAsync("–");

            // The same reader's latency as a histogram: uPlot bars of the snapshot's buckets, drawn on its canvas.
            var histogram = page.Locator("#profiling-histograms .histogram[data-kind=latency][data-stream=slopes]").First;
            await PipelineConsoleTests.WaitUntilAsync(
                async () => await histogram.CountAsync() > 0 && long.TryParse(await histogram.GetAttributeAsync("data-total"), CultureInfo.InvariantCulture, out var total) && total > 0,
                "the slopes reader's latency histogram has counts");
            await histogram.ScrollIntoViewIfNeededAsync();
            await PipelineConsoleTests.WaitUntilAsync(
                async () => await histogram.EvaluateAsync<int>(@"box => {
                    // Pixels of the bars' colour (#2456a6 at 80 %): blue well above red; the axes and grid are grey.
                    const c = box.querySelector('canvas');
                    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                    let bars = 0;
                    for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && d[i + 2] > 140 && d[i + 2] - d[i] > 70) bars++;
                    return bars;
                }") > 50,
                "the histogram's canvas shows bars");

            // Traces of one node: switched on, samples arrive in the table, switched off.
            await page.SelectOptionAsync("#trace-node", "reconstruct");
            await page.ClickAsync("#trace-form button[type=submit]");
            await Expect(page.Locator("#trace-result")).ToHaveTextAsync("tracing reconstruct for 10 s");
            await Expect(page.Locator("#traces tbody tr[data-node=reconstruct]").First).ToBeVisibleAsync(new() { Timeout = 30_000 });
            // Beside the table, a plot of the samples' latency and compute time.
            await PipelineConsoleTests.WaitUntilAsync(
                async () => int.TryParse(await page.Locator("#trace-plot").GetAttributeAsync("data-samples"), CultureInfo.InvariantCulture, out var n) && n > 0,
                "the trace plot has samples");
            await Expect(page.Locator("#trace-plot canvas").First).ToBeVisibleAsync();
            await page.Locator("#trace-plot").ScrollIntoViewIfNeededAsync();
            await PipelineConsoleTests.Screenshot(page, "profiling");
            await page.ClickAsync("#trace-stop");
            await Expect(page.Locator("#trace-result")).ToHaveTextAsync("tracing off");

            await page.ClickAsync("#tabs button[data-tab=control]");
            await page.ClickAsync("button[data-command=shutdown]");
            await Expect(page.Locator("#state")).ToHaveTextAsync("stopped", Slow);
            // The two refused changes above are the only failed requests.
            var unexpected = browser.PageErrors[page].Where(e => !(e.StartsWith("422 PATCH ", StringComparison.Ordinal) && e.EndsWith("/settings/integrate", StringComparison.Ordinal))).ToList();
            Assert.Equal(2, browser.PageErrors[page].Count(e => e.StartsWith("422 PATCH ", StringComparison.Ordinal)));
            Assert.True(unexpected.Count == 0, string.Join("\n", unexpected));
        }
        finally
        {
            await page.Context.CloseAsync();
        }
    }

    private static async Task<double> GainAsync(HttpClient http)
    {
        var settings = await http.GetFromJsonAsync<JsonObject>("/settings");
        return (double)settings!["nodes"]!["integrate"]!["gain"]!;
    }
}
