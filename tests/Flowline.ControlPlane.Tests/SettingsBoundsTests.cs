using System.Net;
using System.Text.Json.Nodes;

namespace Flowline.ControlPlane.Tests;

/// <summary>Declared bounds of a live setting (cpu.leaky_integrator's <c>leak</c> 0..1 and <c>gain</c> 0..2): in the schema, refused out of range by <c>PATCH /settings</c> with a JSON 422 naming the field, and by the document's validation.</summary>
public sealed class SettingsBoundsTests : ServerTest
{
    private static JsonObject IntegratorDocument(double leak) => new()
    {
        ["shared_memory"] = new JsonArray(
            new JsonObject { ["name"] = "error", ["shape"] = new JsonArray(8), ["dtype"] = "float32" },
            new JsonObject { ["name"] = "command", ["shape"] = new JsonArray(8), ["dtype"] = "float32" }),
        ["sources"] = new JsonArray(new JsonObject
        {
            ["name"] = "camera",
            ["kind"] = "synthetic.array",
            ["stream"] = "error",
            ["parameters"] = new JsonObject { ["pattern"] = "constant", ["constant"] = 1.0, ["rate_hz"] = 200 },
        }),
        ["kernels"] = new JsonArray(new JsonObject
        {
            ["name"] = "integrate",
            ["kind"] = "cpu.leaky_integrator",
            ["input"] = "error",
            ["output"] = "command",
            ["parameters"] = new JsonObject { ["leak"] = leak, ["gain"] = 0.3 },
        }),
        ["sinks"] = new JsonArray(new JsonObject { ["name"] = "sink", ["kind"] = "null.sink", ["stream"] = "command" }),
    };

    [Fact]
    public async Task Settings_OutOfBounds_Answers422NamingTheField_AndKeepsTheValue()
    {
        var put = await PutAsync("/document", IntegratorDocument(0.9));
        Assert.True(put.Status == HttpStatusCode.OK, put.Text);
        await PostOkAsync("/commands/build");
        await PostOkAsync("/commands/start");

        var fields = (await GetOkAsync("/settings/schema"))["nodes"]!["integrate"]!["fields"]!.AsArray();
        var leak = fields.Single(f => (string?)f!["name"] == "leak")!;
        var gain = fields.Single(f => (string?)f!["name"] == "gain")!;
        Assert.Equal((0.0, 1.0), ((double)leak["minimum"]!, (double)leak["maximum"]!));
        Assert.Equal((0.0, 2.0), ((double)gain["minimum"]!, (double)gain["maximum"]!));

        var seqBefore = (long)(await GetOkAsync("/settings"))["seq"]!; // the document's replacement is an event too
        var high = await SendAsync(Http, HttpMethod.Patch, "/settings/integrate", """{"leak": 1.5}""");
        Assert.Equal(HttpStatusCode.UnprocessableEntity, high.Status);
        Assert.StartsWith("application/", high.Response.Content.Headers.ContentType?.MediaType, StringComparison.Ordinal);
        Assert.EndsWith("json", high.Response.Content.Headers.ContentType?.MediaType, StringComparison.Ordinal);
        Assert.Equal("leak", (string?)high.Body!["field"]);
        Assert.Contains("at most 1", high.Text, StringComparison.Ordinal);
        var low = await SendAsync(Http, HttpMethod.Patch, "/settings/integrate", """{"gain": -0.1}""");
        Assert.Equal(HttpStatusCode.UnprocessableEntity, low.Status);
        Assert.Equal("gain", (string?)low.Body!["field"]);
        Assert.Contains("at least 0", low.Text, StringComparison.Ordinal);

        // Nothing changed: no settings event, the old values.
        var settings = await GetOkAsync("/settings");
        Assert.Equal(seqBefore, (long)settings["seq"]!);
        Assert.Equal(0.9, (double)settings["nodes"]!["integrate"]!["leak"]!, 9);
        Assert.Equal(0.3, (double)settings["nodes"]!["integrate"]!["gain"]!, 9);

        // A bound itself is allowed.
        var edge = await SendAsync(Http, HttpMethod.Patch, "/settings/integrate", """{"leak": 1}""");
        Assert.True(edge.Status == HttpStatusCode.OK, edge.Text);
        Assert.True((bool)edge.Body!["applied"]!);
        Assert.Equal(1.0, (double)(await GetOkAsync("/settings"))["nodes"]!["integrate"]!["leak"]!);
    }

    [Fact]
    public async Task Document_WithALeakOutOfBounds_IsRefusedAtItsParameter()
    {
        var reply = await PostAsync("/document/validate", IntegratorDocument(1.5));
        Assert.Equal(HttpStatusCode.OK, reply.Status);
        Assert.False((bool)reply.Body!["valid"]!);
        Assert.Contains("parameters.leak", reply.Text, StringComparison.Ordinal);
        Assert.Contains("1.5 is out of range; it must be from 0 to 1", reply.Text, StringComparison.Ordinal);

        var put = await PutAsync("/document", IntegratorDocument(1.5));
        Assert.True(put.Status is HttpStatusCode.BadRequest or HttpStatusCode.UnprocessableEntity, put.Text);
        Assert.Contains("parameters.leak", put.Text, StringComparison.Ordinal);
    }
}
