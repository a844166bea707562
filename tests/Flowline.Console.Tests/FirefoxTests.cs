using System.Globalization;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace Flowline.Console.Tests;

/// <summary>
/// The console in Firefox: Debian's <c>firefox-esr</c> (installed by .ci/run), driven by Playwright over WebDriver
/// BiDi (the <c>moz-firefox</c> channel, given the executable: Playwright downloads nothing). Skipped, saying why,
/// where firefox-esr is not installed.
/// </summary>
[Collection(nameof(ConsoleCollection))]
public sealed class FirefoxTests
{
    /// <summary>Debian's Firefox; FLOWLINE_FIREFOX overrides it.</summary>
    public static string ExecutablePath => Environment.GetEnvironmentVariable("FLOWLINE_FIREFOX") is { Length: > 0 } path ? path : "/usr/bin/firefox-esr";

    [Fact]
    public async Task InFirefox_TheConsoleLoads_DrivesThePipeline_AndItsWorkerTableFills()
    {
        Assert.SkipUnless(File.Exists(ExecutablePath), $"no Firefox at {ExecutablePath} (apt-get install firefox-esr; .ci/run installs it)");
        Environment.SetEnvironmentVariable("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Firefox.LaunchAsync(new BrowserTypeLaunchOptions
        {
            Channel = "moz-firefox",
            ExecutablePath = ExecutablePath,
            Headless = true,
            Timeout = 60_000,
        });
        await using var served = await ConsoleServer.StartAsync();
        var context = await browser.NewContextAsync(new BrowserNewContextOptions { ViewportSize = new ViewportSize { Width = 1360, Height = 860 } });
        try
        {
            context.SetDefaultTimeout(30_000);
            var page = await context.NewPageAsync();
            var errors = new List<string>();
            page.PageError += (_, e) => errors.Add(e);
            await page.GotoAsync(served.Url);
            await Expect(page.Locator("body[data-ready=true]")).ToBeAttachedAsync();
            await Expect(page.Locator("#connection")).ToHaveTextAsync("● live");
            await page.ClickAsync("button[data-command=start]");
            await Expect(page.Locator("#state")).ToHaveTextAsync("running", new() { Timeout = 60_000 });

            // The runtime table, pushed by SSE: a row per worker, and the reconstructor's rate above zero.
            await page.ClickAsync("#tabs button[data-tab=runtime]");
            await Expect(page.Locator("#workers tbody tr")).ToHaveCountAsync(7, new() { Timeout = 30_000 });
            var rate = page.Locator("#workers tr[data-worker=reconstruct] td.rate");
            await PipelineConsoleTests.WaitUntilAsync(
                async () => double.TryParse(await rate.TextContentAsync(), CultureInfo.InvariantCulture, out var hz) && hz > 0,
                "the reconstructor's rate is above zero in Firefox");
            // The graph is laid out and drawn (SVG) in Firefox too.
            await page.ClickAsync("#tabs button[data-tab=graph]");
            await Expect(page.Locator("#graph g.node[data-node=reconstruct]")).ToBeVisibleAsync();

            await page.ClickAsync("#tabs button[data-tab=control]");
            await page.ClickAsync("button[data-command=shutdown]");
            await Expect(page.Locator("#state")).ToHaveTextAsync("stopped", new() { Timeout = 60_000 });
            Assert.True(errors.Count == 0, string.Join("\n", errors));
        }
        finally
        {
            await context.CloseAsync();
        }
    }
}
