using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;

namespace Flowline.ControlPlane.Tests;

/// <summary>
/// What no request may do: send a body or load a file beyond the document limit (413, in JSON), make the
/// server read a FIFO, a device or a directory (400), or get an answer that grows with the errors of a document.
/// </summary>
public sealed class LimitTests : ServerTest
{
    private const int Limit = 64 * 1024;

    protected override ControlServerOptions Options => new()
    {
        Service = new ControlServiceOptions { MaxDocumentBytes = Limit, LoadRoots = ["/dev"] },
    };

    private string Beside(string name) => Path.Combine(Path.GetDirectoryName(ConfigPath)!, name);

    /// <summary>The served document as JSON text, padded with spaces (still the same JSON) to <paramref name="bytes"/> bytes.</summary>
    private async Task<string> DocumentOfLengthAsync(int bytes)
    {
        var json = (await GetOkAsync("/document"))["document"]!.ToJsonString();
        return json + new string(' ', bytes - Encoding.UTF8.GetByteCount(json));
    }

    /// <summary>Sends <paramref name="body"/> with a Content-Length, or chunked without one.</summary>
    private async Task<Reply> SendSizedAsync(HttpMethod method, string path, string body, bool chunked)
    {
        using var request = new HttpRequestMessage(method, path) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.TransferEncodingChunked = chunked;
        using var timeout = new CancellationTokenSource(RequestTimeout);
        var response = await Http.SendAsync(request, timeout.Token);
        var text = await response.Content.ReadAsStringAsync(timeout.Token);
        Assert.Equal(chunked ? null : Encoding.UTF8.GetByteCount(body), request.Content.Headers.ContentLength);
        return new Reply(response.StatusCode, text.Length == 0 ? null : JsonNode.Parse(text), text, response);
    }

    [Theory]
    [InlineData(false, Limit)]
    [InlineData(true, Limit - 1024)] // Kestrel counts the chunks' framing too
    public async Task Validate_BodyWithinTheLimit_IsRead(bool chunked, int bytes)
    {
        var reply = await SendSizedAsync(HttpMethod.Post, "/document/validate", await DocumentOfLengthAsync(bytes), chunked);
        Assert.True(reply.Status == HttpStatusCode.OK, reply.Text);
        Assert.True((bool)reply.Json["valid"]!);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Validate_BodyOneByteOverTheLimit_Is413InJson(bool chunked)
    {
        var reply = await SendSizedAsync(HttpMethod.Post, "/document/validate", await DocumentOfLengthAsync(Limit + 1), chunked);
        Assert.Contains($"{Limit}-byte limit", AssertError(reply, HttpStatusCode.RequestEntityTooLarge), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Put_BodyFourTimesTheLimit_Is413InJson_AndTheDocumentStays(bool chunked)
    {
        var reply = await SendSizedAsync(HttpMethod.Put, "/document", await DocumentOfLengthAsync(4 * Limit), chunked);
        AssertError(reply, HttpStatusCode.RequestEntityTooLarge);
        Assert.Equal(1, (long)(await GetOkAsync("/document"))["revision"]!);
    }

    [Fact]
    public async Task Validate_ThousandsOfErrors_ListsTheFirstHundredAndCountsThemAll()
    {
        var document = new JsonObject();
        for (var i = 0; i < 3000; i++)
        {
            document[$"k{i}"] = 0; // each an unknown key
        }

        var validated = await PostAsync("/document/validate", document);
        Assert.True(validated.Status == HttpStatusCode.OK, validated.Text);
        Assert.False((bool)validated.Json["valid"]!);
        Assert.Equal(100, validated.Json["errors"]!.AsArray().Count);
        var count = (int)validated.Json["error_count"]!;
        Assert.True(count > 100, $"error_count is {count}");

        var put = await PutAsync("/document", document);
        var detail = AssertError(put, HttpStatusCode.BadRequest);
        Assert.EndsWith($"; and {count - 10} more", detail, StringComparison.Ordinal);
        Assert.Equal(100, put.Json["errors"]!.AsArray().Count);
        Assert.Equal(count, (int)put.Json["error_count"]!);
    }

    [Fact]
    public async Task Validate_ValidDocument_CountsNoErrors()
    {
        var reply = await PostOkAsync("/document/validate");
        Assert.Equal(0, (int)reply["error_count"]!);
    }

    [Fact]
    public async Task Load_FileOfTheLimit_Is200_AndOneByteMore_Is413()
    {
        var yaml = ExampleYaml + "\n#";
        File.WriteAllText(Beside("big.yaml"), yaml + new string('x', Limit - Encoding.UTF8.GetByteCount(yaml)));
        var reply = await PostAsync("/document/load", new JsonObject { ["path"] = "big.yaml" });
        Assert.True(reply.Status == HttpStatusCode.OK, reply.Text);

        File.AppendAllText(Beside("big.yaml"), "x");
        reply = await PostAsync("/document/load", new JsonObject { ["path"] = "big.yaml" });
        Assert.Contains($"{Limit}-byte limit", AssertError(reply, HttpStatusCode.RequestEntityTooLarge), StringComparison.Ordinal);
        Assert.Equal(2, (long)(await GetOkAsync("/document"))["revision"]!);
    }

    [Fact]
    public async Task Load_Fifo_IsRefusedWith400_WhileACommandStillRuns()
    {
        var fifo = Beside("pipe.yaml");
        using (var mkfifo = Process.Start("mkfifo", [fifo]))
        {
            await mkfifo.WaitForExitAsync(TestContext.Current.CancellationToken);
            Assert.Equal(0, mkfifo.ExitCode);
        }

        var load = PostAsync("/document/load", new JsonObject { ["path"] = "pipe.yaml" });
        var build = PostAsync("/commands/build");
        try
        {
            Assert.Contains("FIFO", AssertError(await load, HttpStatusCode.BadRequest), StringComparison.Ordinal);
            Assert.Equal(HttpStatusCode.OK, (await build).Status);
            Assert.Equal("built", await StateAsync());
        }
        finally
        {
            if (!load.IsCompletedSuccessfully)
            {
                // A server that waits in open(2) for a writer is let go (opening a FIFO read-write never blocks).
                using var _ = new FileStream(fifo, FileMode.Open, FileAccess.ReadWrite);
            }
        }
    }

    [Theory]
    [InlineData("subdirectory", "a directory")]
    [InlineData("/dev/null", "a character device")]
    public async Task Load_NotARegularFile_Is400NamingWhatItIs(string path, string kind)
    {
        Directory.CreateDirectory(Beside("subdirectory"));
        var reply = await PostAsync("/document/load", new JsonObject { ["path"] = path });
        Assert.Contains($"is {kind}, not a regular file", AssertError(reply, HttpStatusCode.BadRequest), StringComparison.Ordinal);
        Assert.Equal(1, (long)(await GetOkAsync("/document"))["revision"]!);
    }
}
