using System.CommandLine;
using System.Text.Json.Nodes;
using Flowline.Client;
using Flowline.Status;
using Spectre.Console;

namespace Flowline.Cli.Commands;

/// <summary><c>flowline top</c>: a live view of a pipeline's workers and streams (decision 90).</summary>
internal static partial class RemoteCommands
{
    private static Command TopCommand()
    {
        var once = new Option<bool>("--once") { Description = "Draw one screen (two samples one interval apart, for the rates) and exit." };
        var interval = new Option<double>("--interval")
        {
            Description = "Seconds between samples (default 1).",
            DefaultValueFactory = _ => 1.0,
        };
        var top = new Command("top", "A live view of the pipeline's workers and streams: CPU, memory, rates, waits, latency percentiles.") { once, interval };
        top.SetAction((p, ct) => Task.FromResult(Top(p, p.GetValue(once), p.GetValue(interval), ct)));
        return top;
    }

    private static int Top(ParseResult parse, bool once, double interval, CancellationToken cancellationToken)
    {
        if (!(interval is >= 0.05 and <= 3600))
        {
            Console.Error.WriteLine($"--interval must be from 0.05 to 3600 seconds, not {interval}");
            return ExitCodes.Failed;
        }

        using var client = Connect(parse, out var error);
        if (client is null)
        {
            Console.Error.WriteLine(error);
            return ExitCodes.Failed;
        }

        var json = parse.GetValue(Json);
        var url = client.BaseAddress.ToString().TrimEnd('/');
        var pause = TimeSpan.FromSeconds(interval);
        try
        {
            var previous = client.ProfilingAsync(cancellationToken).GetAwaiter().GetResult();
            if (once || json)
            {
                // One screen (or, with --json and without --once, one JSON line per interval until interrupted).
                do
                {
                    Task.Delay(pause, cancellationToken).GetAwaiter().GetResult();
                    var (status, profiling) = Sample(client, cancellationToken);
                    if (json)
                    {
                        var line = new JsonObject { ["status"] = StatusJson.ToJsonObject(status), ["profiling"] = StatusJson.ToJsonObject(profiling) };
                        Console.WriteLine(line.ToJsonString());
                    }
                    else
                    {
                        AnsiConsole.Write(TopView.Render(TopModel.From(url, status, profiling, previous)));
                    }

                    previous = profiling;
                }
                while (!once && !cancellationToken.IsCancellationRequested);

                return ExitCodes.Ok;
            }

            var first = Sample(client, cancellationToken);
            AnsiConsole.Live(TopView.Render(TopModel.From(url, first.Status, first.Profiling, null)))
                .AutoClear(false)
                .Overflow(VerticalOverflow.Ellipsis)
                .Start(context =>
                {
                    previous = first.Profiling;
                    while (!cancellationToken.IsCancellationRequested)
                    {
                        Task.Delay(pause, cancellationToken).GetAwaiter().GetResult();
                        var (status, profiling) = Sample(client, cancellationToken);
                        context.UpdateTarget(TopView.Render(TopModel.From(url, status, profiling, previous)));
                        previous = profiling;
                    }
                });
            return ExitCodes.Ok;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return ExitCodes.Ok; // Ctrl-C ends the view
        }
        catch (RemoteManagerException e)
        {
            Console.Error.WriteLine(e.Message);
            return ExitCodes.Failed;
        }
    }

    private static (PipelineStatus Status, ProfilingSnapshot Profiling) Sample(RemoteManagerClient client, CancellationToken cancellationToken)
    {
        var profiling = client.ProfilingAsync(cancellationToken).GetAwaiter().GetResult();
        var status = client.StatusAsync(cancellationToken).GetAwaiter().GetResult();
        return (status, profiling);
    }
}
