using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using Flowline.Nats;
using Flowline.SharedMemory;

namespace Flowline.Cli.Commands;

/// <summary>
/// <c>flowline bridge publish|subscribe</c>: joins a stream on this host to a NATS subject, to carry it
/// to or from another host (docs/nats.md). Runs until Ctrl+C, SIGTERM, <c>--duration</c>, or the end of the stream.
/// </summary>
internal static class BridgeCommand
{
    private const string TokenVariable = "FLOWLINE_NATS_TOKEN";
    private const string PasswordVariable = "FLOWLINE_NATS_PASSWORD";

    public static Command Create()
    {
        var command = new Command("bridge", "Carry a stream between hosts over NATS: publish a local stream to a subject, or write a subject to a local stream.");
        command.Subcommands.Add(Publish());
        command.Subcommands.Add(Subscribe());
        return command;
    }

    private sealed record Common(
        Option<string> Namespace,
        Option<string> Stream,
        Option<string> Url,
        Option<string> Subject,
        Option<string?> Token,
        Option<string?> User,
        Option<string?> Password,
        Option<FileInfo?> Creds,
        Option<FileInfo?> NKey,
        Option<FileInfo?> TlsCa,
        Option<FileInfo?> TlsCert,
        Option<FileInfo?> TlsKey,
        Option<bool> TlsRequired,
        Option<string> Delivery,
        Option<int?> Window,
        Option<double?> Duration)
    {
        public static Common Add(Command command)
        {
            var common = new Common(
                new Option<string>("--namespace") { Description = "The local stream's namespace.", Required = true },
                new Option<string>("--stream") { Description = "The local stream.", Required = true },
                new Option<string>("--nats") { Description = "The NATS server's URL.", DefaultValueFactory = _ => "nats://127.0.0.1:4222" },
                new Option<string>("--subject") { Description = "The subject the frames travel on.", Required = true },
                new Option<string?>("--token") { Description = $"A token to authenticate with. Visible to `ps`: prefer {TokenVariable}." },
                new Option<string?>("--user") { Description = $"A user name (with --password or {PasswordVariable})." },
                new Option<string?>("--password") { Description = $"The user's password. Visible to `ps`: prefer {PasswordVariable}." },
                new Option<FileInfo?>("--creds") { Description = "A NATS credentials file (JWT and nkey seed)." },
                new Option<FileInfo?>("--nkey") { Description = "An nkey file: the seed and the public key on two lines (as nk -gen user -pubout writes them)." },
                new Option<FileInfo?>("--tls-ca") { Description = "A CA certificate (PEM) to verify the server with." },
                new Option<FileInfo?>("--tls-cert") { Description = "A client certificate (PEM), for mutual TLS." },
                new Option<FileInfo?>("--tls-key") { Description = "The client certificate's key (PEM)." },
                new Option<bool>("--tls-required") { Description = "Require TLS even if the URL does not say tls://." },
                new Option<string>("--delivery")
                {
                    Description = "latest: core NATS, a slow receiver loses frames and counts them, the local writer is never held back; lossless: JetStream, nothing lost " +
                        "(the publisher holds the local writer back and waits for the server, the receiver resumes where it stopped). Both sides must agree.",
                    DefaultValueFactory = _ => "latest",
                },
                new Option<int?>("--window")
                {
                    Description = "Lossless delivery: frames in flight. publish: publishes awaiting the server's acknowledgement (default 64, at most 32 MiB of them). " +
                        "subscribe: frames delivered and not yet acknowledged (default 1, exact after a crash; N > 1 is faster, but a receiver killed " +
                        "with acknowledgements unsent writes up to N-1 frames again after its restart). 1 is one round trip per frame.",
                },
                new Option<double?>("--duration") { Description = "Stop after this many seconds (default: until Ctrl+C or the end of the stream)." });
            common.Delivery.AcceptOnlyFromAmong("latest", "lossless");
            foreach (var option in new Option[] { common.Namespace, common.Stream, common.Url, common.Subject, common.Token, common.User, common.Password, common.Creds, common.NKey, common.TlsCa, common.TlsCert, common.TlsKey, common.TlsRequired, common.Delivery, common.Window, common.Duration })
            {
                command.Options.Add(option);
            }

            return common;
        }

        public NatsBridgeOptions Options(ParseResult parse)
        {
            var user = parse.GetValue(User);
            return new NatsBridgeOptions
            {
                Url = parse.GetValue(Url)!,
                Subject = parse.GetValue(Subject)!,
                ClientName = $"flowline-bridge {parse.GetValue(Namespace)}/{parse.GetValue(Stream)}",
                Token = parse.GetValue(Token) ?? Environment.GetEnvironmentVariable(TokenVariable),
                User = user,
                Password = parse.GetValue(Password) ?? (user is null ? null : Environment.GetEnvironmentVariable(PasswordVariable)),
                CredentialsFile = parse.GetValue(Creds)?.FullName,
                NKeyFile = parse.GetValue(NKey)?.FullName,
                TlsCaFile = parse.GetValue(TlsCa)?.FullName,
                TlsCertFile = parse.GetValue(TlsCert)?.FullName,
                TlsKeyFile = parse.GetValue(TlsKey)?.FullName,
                RequireTls = parse.GetValue(TlsRequired),
                Delivery = parse.GetValue(Delivery) == "lossless" ? SharedMemory.Delivery.Lossless : SharedMemory.Delivery.Latest,
                Window = parse.GetValue(Window) ?? new NatsBridgeOptions().Window,
            };
        }
    }

    private static Command Publish()
    {
        var command = new Command("publish", "Publish each frame of a local stream to a NATS subject (core NATS for latest delivery, JetStream for lossless).");
        var common = Common.Add(command);
        command.SetAction((parse, cancellation) => RunAsync(
            "publish",
            parse.GetValue(common.Duration),
            async () =>
            {
                var publisher = await NatsPublisher.StartAsync(parse.GetValue(common.Namespace)!, parse.GetValue(common.Stream)!, common.Options(parse), cancellationToken: cancellation);
                Console.WriteLine($"publishing {parse.GetValue(common.Namespace)}/{parse.GetValue(common.Stream)} ({publisher.Format}) to '{parse.GetValue(common.Subject)}' at {parse.GetValue(common.Url)}");
                return (publisher, publisher.Completion, () => $"{publisher.FramesPublished} frames published, {publisher.FramesSkipped} skipped locally, {publisher.PublishRetries} publishes retried");
            },
            cancellation));
        return command;
    }

    private static Command Subscribe()
    {
        var command = new Command("subscribe", "Write the frames published to a NATS subject to a local stream, created with their format or attached and checked.");
        var common = Common.Add(command);
        var dtype = new Option<string?>("--dtype") { Description = $"The local stream's element type, with --shape ({ElementTypes.ValidNames}); default: the existing stream's, or the first frame's." };
        var shape = new Option<string?>("--shape") { Description = "The local stream's shape, e.g. 120x120." };
        var capacity = new Option<int>("--capacity") { Description = "The local stream's ring, in frames, when the bridge creates it.", DefaultValueFactory = _ => StreamOptions.DefaultCapacityFrames };
        var pending = new Option<int>("--pending") { Description = "Latest: frames queued while the local stream is full (beyond, frames are dropped and counted); lossless: frames per pull request.", DefaultValueFactory = _ => 64 };
        var clockOffset = new Option<long>("--clock-offset-ns") { Description = "The publisher's wall clock minus this host's, in ns (default 0: clocks synchronised by NTP or PTP)." };
        var durable = new Option<string?>("--durable") { Description = "Lossless delivery: the durable consumer to resume from (default flowline_<namespace>_<stream>)." };
        foreach (var option in new Option[] { dtype, shape, capacity, pending, clockOffset, durable })
        {
            command.Options.Add(option);
        }

        command.SetAction((parse, cancellation) =>
        {
            FrameFormat? format;
            try
            {
                format = ParseFormat(parse.GetValue(dtype), parse.GetValue(shape));
            }
            catch (ArgumentException e)
            {
                Console.Error.WriteLine($"flowline bridge subscribe: {e.Message}");
                return Task.FromResult(ExitCodes.Failed);
            }

            var subscriberOptions = new NatsSubscriberOptions
            {
                Format = format,
                StreamOptions = new StreamOptions { CapacityFrames = parse.GetValue(capacity) },
                PendingFrames = parse.GetValue(pending),
                ClockOffsetNs = parse.GetValue(clockOffset),
                Durable = parse.GetValue(durable),
                AckWindow = parse.GetValue(common.Window) ?? new NatsSubscriberOptions().AckWindow,
            };
            return RunAsync(
                "subscribe",
                parse.GetValue(common.Duration),
                async () =>
                {
                    var ns = parse.GetValue(common.Namespace)!;
                    var name = parse.GetValue(common.Stream)!;
                    var subscriber = await NatsSubscriber.StartAsync(ns, name, common.Options(parse), subscriberOptions, cancellation);
                    Console.WriteLine($"writing '{parse.GetValue(common.Subject)}' at {parse.GetValue(common.Url)} to {parse.GetValue(common.Namespace)}/{parse.GetValue(common.Stream)} ({subscriber.Format?.ToString() ?? "format of the first frame"})");
                    return (new RemovesCreatedStream(subscriber, ns, name), subscriber.Completion, () => $"{subscriber.FramesWritten} frames written, {subscriber.FramesLost} lost on the way, {subscriber.FramesDuplicate} duplicates dropped");
                },
                cancellation);
        });
        return command;
    }

    /// <summary>Disposes the subscriber, then removes the local stream if the bridge created it: the command leaves nothing behind.</summary>
    private sealed class RemovesCreatedStream(NatsSubscriber subscriber, string @namespace, string name) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            var created = subscriber.CreatedStream;
            await subscriber.DisposeAsync();
            if (created)
            {
                SharedMemoryNamespace.Unlink(@namespace, name);
            }
        }
    }

    /// <summary>The format given by --dtype and --shape, or null if neither was given.</summary>
    internal static FrameFormat? ParseFormat(string? dtype, string? shape)
    {
        if (dtype is null && shape is null)
        {
            return null;
        }

        if (dtype is null || shape is null)
        {
            throw new ArgumentException("--dtype and --shape go together: give both or neither");
        }

        if (!ElementTypes.TryParse(dtype, out var type))
        {
            throw new ArgumentException($"--dtype '{dtype}' is not an element type; element types are: {ElementTypes.ValidNames}");
        }

        var parts = shape.Split(['x', ','], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var dims = new int[parts.Length];
        for (var i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out dims[i]) || dims[i] <= 0)
            {
                throw new ArgumentException($"--shape '{shape}': '{parts[i]}' is not a positive size (write e.g. 120x120)");
            }
        }

        return new FrameFormat(type, dims);
    }

    private static async Task<int> RunAsync(string verb, double? durationSeconds, Func<Task<(IAsyncDisposable Bridge, Task Completion, Func<string> Figures)>> start, CancellationToken cancellation)
    {
        if (durationSeconds is <= 0)
        {
            Console.Error.WriteLine($"flowline bridge {verb}: --duration must be positive");
            return ExitCodes.Failed;
        }

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true;
            stop.Cancel();
        });
        (IAsyncDisposable Bridge, Task Completion, Func<string> Figures) bridge;
        try
        {
            bridge = await start();
        }
        catch (Exception e) when (e is NatsBridgeException or SharedMemoryException or ArgumentException)
        {
            Console.Error.WriteLine($"flowline bridge {verb}: {e.Message}");
            return ExitCodes.StartFailed;
        }

        await using (bridge.Bridge)
        {
            var timeout = durationSeconds is { } seconds ? TimeSpan.FromSeconds(seconds) : Timeout.InfiniteTimeSpan;
            try
            {
                await bridge.Completion.WaitAsync(timeout, stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or TimeoutException)
            {
            }
            catch (NatsBridgeException e)
            {
                Console.Error.WriteLine($"flowline bridge {verb}: {e.Message}");
                Console.WriteLine(bridge.Figures());
                return ExitCodes.Failed;
            }

            Console.WriteLine(bridge.Figures());
            return ExitCodes.Ok;
        }
    }
}
