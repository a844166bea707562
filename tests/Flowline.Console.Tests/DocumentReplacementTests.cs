using System.Text;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace Flowline.Console.Tests;

/// <summary>
/// The console and a document replaced by another client (<c>PUT /document</c> over plain HTTP), and the YAML
/// editor's text, which is the document's own with its comments.
/// </summary>
[Collection(nameof(ConsoleCollection))]
public sealed class DocumentReplacementTests(BrowserFixture browser) : IClassFixture<BrowserFixture>
{
    private static readonly LocatorAssertionsToBeVisibleOptions Slow = new() { Timeout = 30_000 };

    /// <summary>ao-basic with a second integrator (its own live settings) on a stream of its own.</summary>
    internal static string WithSecondIntegrator => ConsoleServer.ExampleYaml
        .Replace("\nsources:", "  - name: commands_alt\n    shape: [144]\n    dtype: float32\n\nsources:", StringComparison.Ordinal)
        .Replace("\nsinks:", "  # added by another client, over HTTP\n  - name: integrate_alt\n    kind: cpu.leaky_integrator\n    input: modes\n    output: commands_alt\n    parameters: {leak: 0.9, gain: 0.7}\n\nsinks:", StringComparison.Ordinal);

    [Fact]
    public async Task ADocumentReplacedThroughTheHttpApi_IsShownByAnOpenConsole_ItsGraphTablesEditorAndSettings()
    {
        await using var served = await ConsoleServer.StartAsync();
        var page = await browser.NewPageAsync();
        try
        {
            await page.GotoAsync(served.Url + "#settings");
            await Expect(page.Locator("body[data-ready=true]")).ToBeAttachedAsync();
            await Expect(page.Locator("#settings tr[data-node=integrate][data-field=gain]")).ToBeVisibleAsync(Slow);
            await Expect(page.Locator("#settings-feed")).ToHaveTextAsync("● live updates", new() { Timeout = 30_000 });
            Assert.Equal(0, await page.Locator("#settings tr[data-node=integrate_alt]").CountAsync());

            // Another client replaces the document; the console is not touched.
            using var http = new HttpClient { BaseAddress = served.Server.Address, Timeout = TimeSpan.FromSeconds(60) };
            using (var put = await http.PutAsync("/document", new StringContent(WithSecondIntegrator, Encoding.UTF8, "application/yaml")))
            {
                Assert.True(put.IsSuccessStatusCode, await put.Content.ReadAsStringAsync());
            }

            // The settings widgets of the new node, with the document's values.
            var gain = page.Locator("#settings tr[data-node=integrate_alt][data-field=gain] input[name=gain]");
            await Expect(gain).ToBeVisibleAsync(Slow);
            await Expect(gain).ToHaveValueAsync("0.7");
            await Expect(page.Locator("body")).ToHaveAttributeAsync("data-revision", "2");

            // The graph, the runtime table, the document's tables and the YAML editor show it too.
            await page.ClickAsync("#tabs button[data-tab=graph]");
            await Expect(page.Locator("#graph g.node[data-node=integrate_alt]")).ToBeVisibleAsync(Slow);
            await Expect(page.Locator("#graph g.node[data-node=commands_alt]")).ToBeVisibleAsync();
            await page.ClickAsync("#tabs button[data-tab=runtime]");
            await Expect(page.Locator("#workers tr[data-worker=integrate_alt]")).ToBeVisibleAsync(Slow);
            await page.ClickAsync("#tabs button[data-tab=document]");
            await Expect(page.Locator("#table-kernels tr[data-name=integrate_alt]")).ToBeVisibleAsync(Slow);
            await Expect(page.Locator(".CodeMirror-code")).ToContainTextAsync("# added by another client, over HTTP");
            Assert.True(browser.PageErrors[page].Count == 0, string.Join("\n", browser.PageErrors[page]));
        }
        finally
        {
            await page.Context.CloseAsync();
        }
    }

    [Fact]
    public async Task TheYamlEditor_ShowsTheDocumentsComments_AndAppliesThemSoThatTheNextLoadHasThem()
    {
        await using var served = await ConsoleServer.StartAsync();
        var page = await browser.NewPageAsync();
        try
        {
            await page.GotoAsync(served.Url + "#document");
            await Expect(page.Locator("body[data-ready=true]")).ToBeAttachedAsync();
            // The file's own first line, a comment.
            var firstLine = ConsoleServer.ExampleYaml.Split('\n')[0];
            Assert.StartsWith("#", firstLine, StringComparison.Ordinal);
            await Expect(page.Locator(".CodeMirror-code > div").Nth(0).Locator(".CodeMirror-line")).ToHaveTextAsync(firstLine);
            await Expect(page.Locator("#yaml")).ToHaveAttributeAsync("data-source", "text");

            // A comment typed at the end of the first line is applied with the text.
            await page.Locator(".CodeMirror-code > div").Nth(0).Locator(".CodeMirror-line").ClickAsync();
            await page.Keyboard.PressAsync("End");
            await page.Keyboard.TypeAsync(" (edited in the console)");
            await Expect(page.Locator("#doc-status")).ToHaveTextAsync("valid; not applied yet", new() { Timeout = 30_000 });
            await page.ClickAsync("#doc-apply");
            await Expect(page.Locator("#doc-status")).ToHaveTextAsync("applied: revision 2", new() { Timeout = 30_000 });

            using var http = new HttpClient { BaseAddress = served.Server.Address, Timeout = TimeSpan.FromSeconds(30) };
            var yaml = await http.GetStringAsync("/document/yaml");
            Assert.Equal(firstLine + " (edited in the console)", yaml.Split('\n')[0]);

            // A new page (the next load) shows the applied text with its comment.
            await page.ReloadAsync();
            await Expect(page.Locator("body[data-ready=true]")).ToBeAttachedAsync();
            await Expect(page.Locator(".CodeMirror-code > div").Nth(0).Locator(".CodeMirror-line")).ToHaveTextAsync(firstLine + " (edited in the console)");
            Assert.True(browser.PageErrors[page].Count == 0, string.Join("\n", browser.PageErrors[page]));
        }
        finally
        {
            await page.Context.CloseAsync();
        }
    }
}
