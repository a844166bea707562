using System.CommandLine;
using Flowline.Cli.Bench;
using Flowline.SharedMemory;

namespace Flowline.Cli.Commands;

/// <summary><c>flowline bench streams | control | soak</c>: streams between two processes beside the machine's limits, the control plane under load, and a soak of a pipeline under a real server.</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of tables (progress goes to standard error)." };
        var quick = new Option<bool>("--quick") { Description = "Run about ten times fewer samples: a smoke test, not a measurement." };
        var pin = new Option<bool>("--pin") { Description = "Pin the writer to CPU 0 and the reader to CPU 1." };
        var only = new Option<string[]>("--only")
        {
            Description = "Run only these sections: limits, latency, throughput, large (1 MiB frames copied in and out, per reader wait policy), idle (targets that compare with a limit need limits).",
            AllowMultipleArgumentsPerToken = true,
        };
        only.AcceptOnlyFromAmong(StreamBenchOptions.Sections);
        var streams = new Command("streams", "Latency, throughput and idle CPU of shared-memory streams between two processes, with the physical limits measured in the same run.")
        {
            json,
            quick,
            pin,
            only,
        };
        streams.SetAction(parse =>
        {
            var options = new StreamBenchOptions(parse.GetValue(quick), parse.GetValue(pin), parse.GetValue(only) ?? []);
            var progress = parse.GetValue(json) ? Console.Error : Console.Out;
            try
            {
                var report = new StreamBenchmark(options, progress).Run();
                if (parse.GetValue(json))
                {
                    Console.Out.WriteLine(BenchJson.Serialize(report));
                }
                else
                {
                    BenchTables.Render(report);
                }

                return ExitCodes.Ok;
            }
            catch (Exception e) when (e is SharedMemoryException or TimeoutException or InvalidOperationException or IOException)
            {
                Console.Error.WriteLine($"flowline bench streams: {e.Message}");
                return ExitCodes.Failed;
            }
        });

        return new Command("bench", "Measure Flowline on this machine.") { streams, Control(), Soak(), BenchNatsCommand.Create(), BenchCoordinatorCommand.Create() };
    }

    private static Command Control()
    {
        var document = new Option<FileInfo>("--document") { Description = "The pipeline the server runs meanwhile.", DefaultValueFactory = _ => new FileInfo("examples/copy-64/pipeline.yaml") };
        var duration = new Option<double>("--duration") { Description = "Seconds of each measurement.", DefaultValueFactory = _ => 10 };
        var concurrency = new Option<int>("--concurrency") { Description = "Clients polling GET /status at once.", DefaultValueFactory = _ => 8 };
        var subscribers = new Option<int>("--subscribers") { Description = "Clients following GET /events.", DefaultValueFactory = _ => 50 };
        var rate = new Option<double>("--event-rate") { Description = "Events published per second.", DefaultValueFactory = _ => 100 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object." };
        var command = new Command("control", "Latency of GET /status under concurrent load, and the delay of events to many SSE subscribers, on a real server running a real pipeline.")
        {
            document, duration, concurrency, subscribers, rate, json,
        };
        command.SetAction(parse =>
        {
            var options = new ControlBenchOptions(parse.GetValue(document)!.FullName, parse.GetValue(duration), parse.GetValue(concurrency), parse.GetValue(subscribers), parse.GetValue(rate));
            if (options.Duration <= 0 || options.Concurrency < 1 || options.Subscribers < 1 || options.EventRateHz <= 0)
            {
                Console.Error.WriteLine("--duration, --concurrency, --subscribers and --event-rate must be positive");
                return ExitCodes.Failed;
            }

            var asJson = parse.GetValue(json);
            try
            {
                var report = new ControlBenchmark(options, asJson ? Console.Error : Console.Out).RunAsync().GetAwaiter().GetResult();
                if (asJson)
                {
                    Console.Out.WriteLine(BenchJson.Serialize(report));
                }
                else
                {
                    BenchTables.Render(report);
                }

                return ExitCodes.Ok;
            }
            catch (Exception e) when (e is TimeoutException or InvalidOperationException or IOException or HttpRequestException or Documents.DocumentValidationException)
            {
                Console.Error.WriteLine($"flowline bench control: {e.Message}");
                return ExitCodes.Failed;
            }
        });
        return command;
    }

    private static Command Soak()
    {
        var document = new Option<FileInfo>("--document") { Description = "The pipeline to soak.", DefaultValueFactory = _ => new FileInfo("examples/ao-basic/pipeline.yaml") };
        var duration = new Option<double>("--duration") { Description = "Seconds to soak the pipeline, from its start.", DefaultValueFactory = _ => 600 };
        var killInterval = new Option<double>("--kill-interval") { Description = "Seconds between two kills (SIGKILL) of a worker, each followed by POST /commands/restart.", DefaultValueFactory = _ => 30 };
        var readers = new Option<int>("--readers") { Description = "Threads attaching readers to the streams and leaving them, in a loop.", DefaultValueFactory = _ => 4 };
        var clients = new Option<int>("--status-clients") { Description = "Clients calling GET /status back to back.", DefaultValueFactory = _ => 1 };
        var delivery = new Option<string>("--delivery") { Description = "lossless: every stream lossless (the sink's count is then checked against its writer's); document: as the document says.", DefaultValueFactory = _ => "lossless" };
        delivery.AcceptOnlyFromAmong("lossless", "document");
        var rate = new Option<double?>("--rate") { Description = "The sources' rate_hz (default: the document's)." };
        var seed = new Option<int>("--seed") { Description = "Seeds the readers' choices of stream, delivery and session length.", DefaultValueFactory = _ => 1 };
        var victims = new Option<string[]>("--kill") { Description = "The workers to kill, in turn (default: every source and kernel, and the sinks with --delivery document).", AllowMultipleArgumentsPerToken = true };
        var json = new Option<bool>("--json") { Description = "Print one JSON object (progress goes to standard error)." };
        var command = new Command("soak", "Run a pipeline under a real server while readers come and go, workers are killed and restarted and GET /status is called back to back; report frames lost, torn frames accepted, restarts, memory growth and leftovers.")
        {
            document, duration, killInterval, readers, clients, delivery, rate, seed, victims, json,
        };
        command.SetAction((parse, cancellation) =>
        {
            var options = new SoakOptions(
                parse.GetValue(document)!.FullName,
                TimeSpan.FromSeconds(parse.GetValue(duration)),
                TimeSpan.FromSeconds(parse.GetValue(killInterval)),
                parse.GetValue(readers),
                parse.GetValue(clients),
                parse.GetValue(delivery) == "lossless",
                parse.GetValue(rate),
                parse.GetValue(seed),
                parse.GetValue(victims) ?? []);
            if (!(options.Duration > TimeSpan.Zero) || !(options.KillInterval > TimeSpan.Zero) || options.Readers < 0 || options.StatusClients < 0 || options.RateHz is <= 0)
            {
                Console.Error.WriteLine("flowline bench soak: --duration, --kill-interval and --rate must be positive, --readers and --status-clients at least 0");
                return Task.FromResult(ExitCodes.Failed);
            }

            return Run(options, parse.GetValue(json), cancellation);
        });
        return command;
    }

    private static async Task<int> Run(SoakOptions options, bool asJson, CancellationToken cancellation)
    {
        SoakReport report;
        try
        {
            report = await new SoakBenchmark(options, asJson ? Console.Error : Console.Out).RunAsync(cancellation).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or InvalidOperationException or IOException or SharedMemoryException or Client.RemoteManagerException or Documents.DocumentValidationException)
        {
            await Console.Error.WriteLineAsync($"flowline bench soak: {e.Message}").ConfigureAwait(false);
            return ExitCodes.Failed;
        }

        if (asJson)
        {
            await Console.Out.WriteLineAsync(BenchJson.Serialize(report)).ConfigureAwait(false);
        }
        else
        {
            BenchTables.Render(report);
        }

        if (!report.Passed)
        {
            await Console.Error.WriteLineAsync($"flowline bench soak: not zero: {string.Join(", ", report.NotZero)}").ConfigureAwait(false);
        }

        return report.Passed ? ExitCodes.Ok : ExitCodes.SoakFailed;
    }
}

/// <summary>The hidden verb that runs the other side of a benchmark in a second process.</summary>
internal static class BenchPeerCommand
{
    public static Command Create()
    {
        var role = new Argument<string>("role") { Description = "latency, throughput, idle or pong." };
        var ns = new Option<string>("--ns") { Description = "Namespace of the benchmark's regions.", Required = true };
        var name = new Option<string>("--name") { Description = "Region name.", Required = true };
        var policy = new Option<WaitPolicy>("--policy") { Description = "Wait policy of the reader." };
        var count = new Option<long>("--count") { Description = "Frames or rounds." };
        var warmup = new Option<long>("--warmup") { Description = "Frames to discard first." };
        var look = new Option<bool>("--look") { Description = "Read in place (Look/Increment) instead of copying." };
        var futex = new Option<bool>("--futex") { Description = "Probe through futexes instead of spinning." };
        var seconds = new Option<double>("--seconds") { Description = "How long to stay idle." };
        var parent = new Option<int>("--parent") { Description = "Exit when this process dies." };
        var batch = new Option<int>("--batch") { Description = "Read lossless frames in batches of this many (ReadBatch) instead of one at a time." };
        var command = new Command("bench-peer", "Runs one side of a benchmark (started by flowline bench).")
        {
            role, ns, name, policy, count, warmup, look, futex, seconds, parent, batch,
        };
        command.Hidden = true;
        command.SetAction(parse =>
        {
            var args = new BenchPeerArgs(
                parse.GetValue(role)!,
                parse.GetValue(ns)!,
                parse.GetValue(name)!,
                parse.GetValue(policy),
                parse.GetValue(count),
                parse.GetValue(warmup),
                parse.GetValue(look),
                parse.GetValue(futex),
                parse.GetValue(seconds),
                parse.GetValue(parent),
                parse.GetValue(batch));
            return BenchPeer.Run(args);
        });
        return command;
    }
}
