using System.Net;
using Flowline.ControlPlane;
using Flowline.SharedMemory.Liveness;
using static Microsoft.Playwright.Assertions;

namespace Flowline.Console.Tests;

/// <summary>The control page's local servers (launch, switch, kill) and a token-protected server.</summary>
[Collection(nameof(ConsoleCollection))]
public sealed class ServersAndTokensTests(BrowserFixture browser) : IClassFixture<BrowserFixture>
{
    private const string ReadToken = "read-token-console";
    private const string AdminToken = "admin-token-console";

    [Fact]
    public async Task AServer_IsLaunchedAndKilledFromTheControlPage()
    {
        await using var served = await ConsoleServer.StartAsync(o => o with { Launch = new ServerLaunchOptions { Command = ConsoleServer.CliCommand, MaxServers = 2 } });
        var other = Path.Combine(served.TestDirectory, "other.yaml");
        File.WriteAllText(other, ConsoleServer.ExampleYaml);
        var otherNamespace = served.Namespace + "-b";
        var page = await browser.NewPageAsync();
        int? launchedPid = null;
        try
        {
            await page.GotoAsync(served.Url);
            await Expect(page.Locator("body[data-ready=true]")).ToBeAttachedAsync();
            var rows = page.Locator("#servers tbody tr[data-pid]");
            await Expect(rows).ToHaveCountAsync(1);
            await Expect(rows.Locator("button")).ToBeDisabledAsync(); // this server is not killed from its own page

            await page.FillAsync("#launch-path", other);
            await page.FillAsync("#launch-ns", otherNamespace);
            await page.ClickAsync("#launch-form button[type=submit]");
            await Expect(page.Locator("#servers-result")).ToContainTextAsync("launched http://127.0.0.1:", new() { Timeout = 60_000 });
            await Expect(rows).ToHaveCountAsync(2);
            var row = page.Locator("#servers tbody tr", new() { HasText = other });
            launchedPid = int.Parse((await row.GetAttributeAsync("data-pid"))!, System.Globalization.CultureInfo.InvariantCulture);
            Assert.NotNull(ProcessIdentity.Of(launchedPid.Value));
            var link = row.Locator("a");
            var url = await link.GetAttributeAsync("href");
            await PipelineConsoleTests.Screenshot(page, "servers");

            // The other server's own console (switching to it); then back, and kill it.
            await link.ClickAsync();
            await Expect(page.Locator("#doc-path")).ToHaveTextAsync(other);
            Assert.StartsWith(url!.TrimEnd('/'), page.Url, StringComparison.Ordinal);
            await page.GotoAsync(served.Url);
            await Expect(page.Locator("#doc-path")).ToHaveTextAsync(served.ConfigPath);
            await page.Locator("#servers tbody tr", new() { HasText = other }).Locator("button").ClickAsync();
            await Expect(page.Locator("#servers-result")).ToContainTextAsync("stopped the server", new() { Timeout = 30_000 });
            await Expect(rows).ToHaveCountAsync(1);
            Assert.Null(ProcessIdentity.Of(launchedPid.Value) is { } id && id.IsAlive() ? id : null);
            Assert.True(browser.PageErrors[page].Count == 0, string.Join("\n", browser.PageErrors[page]));
        }
        finally
        {
            await page.Context.CloseAsync();
            if (launchedPid is { } pid)
            {
                ThisProcess.SendSignal(pid, 15);
            }
        }

        ConsoleServer.AssertNothingLeft(otherNamespace);
    }

    [Fact]
    public async Task ATokenServer_RefusesTheConsoleUntilTheTokenIsGiven_AndTheReadScopeSeesControlsDisabled()
    {
        await using var served = await ConsoleServer.StartAsync(o => o with
        {
            Tokens = AccessTokens.Scoped(new Dictionary<string, string> { ["read"] = ReadToken, ["admin"] = AdminToken }),
        });
        using (var http = new HttpClient { BaseAddress = served.Server.Address })
        {
            Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync("/status")).StatusCode);
        }

        var page = await browser.NewPageAsync();
        try
        {
            await page.GotoAsync(served.Url);
            var dialog = page.Locator("#token-dialog");
            await Expect(dialog).ToBeVisibleAsync();
            await Expect(page.Locator("#state")).ToHaveTextAsync("…");

            await page.FillAsync("#token-input", "wrong-token");
            await page.ClickAsync("#token-ok");
            await Expect(dialog).ToBeVisibleAsync();
            await Expect(page.Locator("#token-why")).ToContainTextAsync("invalid bearer token");
            await Expect(page.Locator("#state")).ToHaveTextAsync("…");

            await page.FillAsync("#token-input", ReadToken);
            await page.ClickAsync("#token-ok");
            await Expect(page.Locator("body[data-ready=true]")).ToBeAttachedAsync();
            await Expect(page.Locator("#state")).ToHaveTextAsync("initialized");
            await Expect(page.Locator("#scope")).ToHaveTextAsync("scope: read");
            foreach (var command in new[] { "build", "start", "shutdown" })
            {
                await Expect(page.Locator($"button[data-command={command}]")).ToBeDisabledAsync();
            }

            await Expect(page.Locator("#launch-form button")).ToBeDisabledAsync();
            Assert.DoesNotContain(ReadToken, page.Url, StringComparison.Ordinal);
            Assert.Equal(ReadToken, await page.EvaluateAsync<string>("() => sessionStorage.getItem('flowline.token')"));

            // An admin's tab: the same server, every legal control enabled.
            var admin = await browser.NewPageAsync();
            try
            {
                await admin.GotoAsync(served.Url);
                await admin.FillAsync("#token-input", AdminToken);
                await admin.ClickAsync("#token-ok");
                await Expect(admin.Locator("#scope")).ToHaveTextAsync("scope: admin");
                await Expect(admin.Locator("button[data-command=build]")).ToBeEnabledAsync();
                await Expect(admin.Locator("button[data-command=pause]")).ToBeDisabledAsync();
            }
            finally
            {
                await admin.Context.CloseAsync();
            }
        }
        finally
        {
            await page.Context.CloseAsync();
        }
    }
}
