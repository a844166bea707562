using Microsoft.Playwright;

namespace Flowline.Console.Tests;

/// <summary>
/// One headless Debian chromium per test class (<c>/usr/bin/chromium</c>, <c>--no-sandbox</c> for root), driven
/// by Playwright; Playwright downloads nothing. Closed at the end of the class whatever happens.
/// </summary>
public sealed class BrowserFixture : IAsyncLifetime
{
    /// <summary>Debian's chromium (installed by .ci/run); FLOWLINE_CHROMIUM overrides it.</summary>
    public static string ExecutablePath => Environment.GetEnvironmentVariable("FLOWLINE_CHROMIUM") is { Length: > 0 } path ? path : "/usr/bin/chromium";

    private IPlaywright? playwright;

    /// <summary>The browser.</summary>
    public IBrowser Browser { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        Assert.True(File.Exists(ExecutablePath), $"the console tests need chromium at {ExecutablePath} (apt-get install chromium; .ci/run installs it)");
        Environment.SetEnvironmentVariable("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
        playwright = await Playwright.CreateAsync();
        Browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ExecutablePath,
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
            Timeout = 60_000,
        });
    }

    /// <summary>A new browser context (its own sessionStorage) and page, with bounded waits.</summary>
    public async Task<IPage> NewPageAsync()
    {
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions { ViewportSize = new ViewportSize { Width = 1360, Height = 860 } });
        context.SetDefaultTimeout(20_000);
        context.SetDefaultNavigationTimeout(20_000);
        var page = await context.NewPageAsync();
        var errors = new List<string>();
        page.PageError += (_, e) => errors.Add(e);
        page.Console += (_, m) =>
        {
            // Failed requests are reported below with their URL.
            if (m.Type == "error" && !m.Text.StartsWith("Failed to load resource:", StringComparison.Ordinal))
            {
                errors.Add(m.Text);
            }
        };
        // A 404 of a feature the server does not have (settings, profiling) is expected and shown as such.
        page.Response += (_, r) =>
        {
            // A viewer's request in flight when the pipeline shuts down is answered 409 (no stream any more), as documented.
            var stoppedStream = r.Status == 409 && r.Url.Contains("/streams/", StringComparison.Ordinal);
            if (r.Status >= 400 && r.Status != 404 && !stoppedStream)
            {
                errors.Add($"{r.Status} {r.Request.Method} {r.Url}");
            }
        };
        PageErrors[page] = errors;
        return page;
    }

    /// <summary>Script errors and console errors each page reported.</summary>
    public Dictionary<IPage, List<string>> PageErrors { get; } = [];

    public async ValueTask DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.CloseAsync();
        }

        playwright?.Dispose();
    }
}
