using System.Text.Json.Nodes;

namespace Flowline.Cli.Tests;

/// <summary>Issue 12's client verbs (<c>processes</c>, <c>request</c>, <c>settings</c>, <c>topology</c>) against <c>flowline serve</c>.</summary>
public sealed partial class ServeCommandTests
{
    [Fact]
    public void ObservabilityVerbs_ProcessesRequestSettingsTopology()
    {
        var (server, url) = Serve();
        AssertExit(0, Client("start", "--url", url));

        var processes = Client("processes", "--url", url, "--json");
        AssertExit(0, processes);
        var list = JsonNode.Parse(processes.Output)!["processes"]!.AsArray();
        Assert.Equal("manager", (string?)list[0]!["role"]);
        Assert.Contains(list, p => (string?)p!["role"] == "worker" && p["nodes"]!.AsArray().Any(n => (string?)n == "copy"));

        var ping = Client("request", "copy", "ping", "--url", url, "--json");
        AssertExit(0, ping);
        Assert.Equal("copy", (string?)JsonNode.Parse(ping.Output)!["result"]!["node"]);
        var noHandler = Client("request", "copy", "frobnicate", "--url", url);
        AssertExit(1, noHandler);
        Assert.Contains("[no_handler]", noHandler.Error, StringComparison.Ordinal);

        var settings = Client("settings", "camera", "--url", url, "--json");
        AssertExit(0, settings);
        Assert.Equal("random", (string?)JsonNode.Parse(settings.Output)!["pattern"]);
        // A source's rate is not live: refused while it runs, naming the field, and nothing changed.
        var refused = Client("settings", "camera", "--set", "rate_hz=10", "--url", url);
        AssertExit(1, refused);
        Assert.Contains("field rate_hz", refused.Error, StringComparison.Ordinal);
        Assert.Contains("seq 0", Client("settings", "--url", url).Output, StringComparison.Ordinal);

        var topology = Client("topology", "--url", url);
        AssertExit(0, topology);
        Assert.Contains("camera -[input_vector]-> copy", topology.Output, StringComparison.Ordinal);

        Terminate(server);
        Leftovers.AssertNothingLeft(ns);
    }
}
