using System.Text.Json.Nodes;

namespace Flowline.Cli.Tests;

public sealed class KindCommandTests
{
    [Fact]
    public void Kinds_Json_ListsEveryBuiltInKernelWithItsParameters()
    {
        var result = Cli.Run("kinds", "--json");
        Assert.Equal(0, result.ExitCode);
        var kinds = JsonNode.Parse(result.Output)!.AsArray();
        var names = kinds.Select(k => k!["kind"]!.GetValue<string>()).ToList();
        Assert.Contains("cpu.custom_operation", names);
        Assert.Contains("cpu.shack_hartmann_centroid", names);
        Assert.Equal(names.Order(StringComparer.Ordinal), names);
        var scale = kinds.Single(k => k!["kind"]!.GetValue<string>() == "cpu.scale")!;
        var factor = Assert.Single(scale["parameters"]!.AsArray());
        Assert.Equal("factor", factor!["name"]!.GetValue<string>());
        Assert.True(factor["required"]!.GetValue<bool>());
        Assert.Equal("built-in", scale["origin"]!.GetValue<string>());
    }

    [Fact]
    public void Sources_And_Sinks_ListTheirKinds()
    {
        var sources = Cli.Run("sources");
        Assert.Equal(0, sources.ExitCode);
        Assert.Contains("synthetic.array", sources.Output, StringComparison.Ordinal);
        Assert.Contains("synthetic.frame_set", sources.Output, StringComparison.Ordinal);
        Assert.Contains("rate_hz", sources.Output, StringComparison.Ordinal);

        var sinks = Cli.Run("sinks", "--json");
        Assert.Equal(0, sinks.ExitCode);
        var kinds = JsonNode.Parse(sinks.Output)!.AsArray();
        Assert.Equal(["null.sink", "python.sink"], kinds.Select(k => k!["kind"]!.GetValue<string>()).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Kinds_WithAPluginThatIsMissing_FailsClearly()
    {
        var result = Cli.Run("kinds", "--plugin", "no-such-plugin.dll");
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("cannot find plugin assembly", result.Error, StringComparison.Ordinal);
    }
}
