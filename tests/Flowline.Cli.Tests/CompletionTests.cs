namespace Flowline.Cli.Tests;

/// <summary>
/// Shell completion: System.CommandLine's <c>[suggest]</c> directive, which the completion scripts of
/// docs/cli.md (and dotnet-suggest) call with the command line typed so far and the cursor's position.
/// </summary>
public sealed class CompletionTests
{
    private static string[] Lines(Cli.Result result) => result.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    [Fact]
    public void Suggest_WithNothingTyped_ListsEveryVerb()
    {
        var result = Cli.Run("[suggest]");
        Assert.Equal(0, result.ExitCode);
        var lines = Lines(result);
        foreach (var verb in new[] { "run", "benchmark", "validate", "describe", "kinds", "serve", "status", "bench", "bridge", "gc", "servers" })
        {
            Assert.Contains(verb, lines);
        }

        Assert.Contains("--help", lines);
    }

    [Fact]
    public void Suggest_APartialVerb_ListsTheVerbsItStarts()
    {
        var result = Cli.Run("[suggest:4]", "benc");
        Assert.Equal(0, result.ExitCode);
        var lines = Lines(result);
        Assert.Contains("bench", lines);
        Assert.Contains("benchmark", lines);
        Assert.DoesNotContain("serve", lines);
    }

    [Fact]
    public void Suggest_AfterAVerb_ListsItsSubcommands()
    {
        var result = Cli.Run("[suggest:6]", "bench ");
        Assert.Equal(0, result.ExitCode);
        var lines = Lines(result);
        foreach (var sub in new[] { "streams", "control", "soak" })
        {
            Assert.Contains(sub, lines);
        }
    }
}
