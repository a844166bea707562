using System.Text.Json.Nodes;
using Flowline.Documents;
using Flowline.Nats;
using Flowline.SharedMemory;

namespace Flowline.Runtime;

/// <summary>
/// The NATS bridges of a pipeline's <c>remote</c> streams (docs/nats.md): a stream a node of the pipeline
/// writes is published to its subject, a stream no node writes is received from it. Started with the
/// workers, stopped with them; a bridge that fails is reported once as a <c>bridge_failed</c> event and
/// started again by the manager's restart.
/// </summary>
internal sealed class RemoteBridges : IDisposable
{
    private readonly List<Bridge> bridges = [];
    private readonly Lock gate = new();

    private RemoteBridges()
    {
    }

    /// <summary>Starts a bridge for every remote stream, or none if the pipeline has none; on an error, the bridges started are stopped and the error names the stream.</summary>
    public static RemoteBridges? Start(ValidatedPipeline pipeline, PipelinePlan plan, CancellationToken cancellationToken = default)
    {
        var remotes = pipeline.Spec.Streams.Where(s => s.Remote is not null).ToList();
        if (remotes.Count == 0)
        {
            return null;
        }

        var started = new RemoteBridges();
        try
        {
            foreach (var spec in remotes)
            {
                started.bridges.Add(StartOne(pipeline, plan, spec, cancellationToken));
            }

            return started;
        }
        catch
        {
            started.Dispose();
            throw;
        }
    }

    /// <summary>Starts again the bridges that stopped with an error (the manager's restart); an error names the stream, and the bridge stays stopped.</summary>
    public void RestartFailed(ValidatedPipeline pipeline, PipelinePlan plan)
    {
        for (var i = 0; i < bridges.Count; i++)
        {
            if (bridges[i].Completion.IsFaulted)
            {
                bridges[i].Handle.DisposeAsync().AsTask().GetAwaiter().GetResult();
                var restarted = StartOne(pipeline, plan, pipeline.Spec.FindStream(bridges[i].Stream)!, CancellationToken.None);
                lock (gate)
                {
                    bridges[i] = restarted;
                }
            }
        }
    }

    private static Bridge StartOne(ValidatedPipeline pipeline, PipelinePlan plan, StreamSpec spec, CancellationToken cancellationToken)
    {
        var ns = plan.NamespaceOf(spec.Name);
        NatsBridgeOptions options;
        try
        {
            options = Options(spec, pipeline.Spec.BaseDirectory, $"flowline {ns}/{spec.Name}");
            options.Validate();
        }
        catch (ArgumentException e)
        {
            throw new InvalidOperationException($"stream '{spec.Name}': remote: {e.Message}", e);
        }

        try
        {
            if (pipeline.Graph.ProducersOf(spec.Name).Count > 0)
            {
                var publisher = NatsPublisher.StartAsync(ns, spec.Name, options, cancellationToken: cancellationToken).GetAwaiter().GetResult();
                return new Bridge(spec.Name, "publish", spec.Remote!.Subject, DeliveryName(options.Delivery), publisher, publisher.Completion);
            }

            var subscriberOptions = new NatsSubscriberOptions { Format = spec.Format, StreamOptions = plan.OptionsOf(spec.Name), Durable = spec.Remote!.Durable };
            var subscriber = NatsSubscriber.StartAsync(ns, spec.Name, options, subscriberOptions, cancellationToken).GetAwaiter().GetResult();
            return new Bridge(spec.Name, "subscribe", spec.Remote.Subject, DeliveryName(options.Delivery), subscriber, subscriber.Completion);
        }
        catch (Exception e) when (e is NatsBridgeException or SharedMemoryException)
        {
            throw new InvalidOperationException($"stream '{spec.Name}': the NATS bridge ({spec.Remote!.Nats}, subject '{spec.Remote.Subject}') did not start: {e.Message}", e);
        }
    }

    /// <summary>The client options of a remote stream: files relative to <paramref name="baseDirectory"/>, secrets read from their file or variable.</summary>
    internal static NatsBridgeOptions Options(StreamSpec spec, string? baseDirectory, string clientName)
    {
        var remote = spec.Remote!;
        string? PathOf(string? file) => file is null ? null : Path.GetFullPath(file, baseDirectory ?? Environment.CurrentDirectory);
        string? Secret(string what, string? file, string? variable)
        {
            if (file is not null)
            {
                var path = PathOf(file)!;
                if (!File.Exists(path))
                {
                    throw new ArgumentException($"{what}_file '{path}' does not exist");
                }

                return File.ReadAllText(path).Trim();
            }

            if (variable is not null)
            {
                return Environment.GetEnvironmentVariable(variable) is { Length: > 0 } value
                    ? value
                    : throw new ArgumentException($"{what}_env: the environment variable '{variable}' is not set");
            }

            return null;
        }

        return new NatsBridgeOptions
        {
            Url = remote.Nats,
            Subject = remote.Subject,
            ClientName = clientName,
            Delivery = remote.Delivery ?? Delivery.Latest,
            Token = Secret("token", remote.TokenFile, remote.TokenEnv),
            User = remote.User,
            Password = remote.User is null ? null : Secret("password", remote.PasswordFile, remote.PasswordEnv),
            CredentialsFile = PathOf(remote.Creds),
            NKeyFile = PathOf(remote.NKey),
            TlsCaFile = PathOf(remote.TlsCa),
            TlsCertFile = PathOf(remote.TlsCert),
            TlsKeyFile = PathOf(remote.TlsKey),
            RequireTls = remote.TlsRequired ?? false,
        };
    }

    /// <summary>The bridges that stopped with an error since the last call, each once, as event data.</summary>
    public IEnumerable<JsonObject> NewFailures()
    {
        foreach (var bridge in bridges.Where(b => b.Completion.IsFaulted && !b.Reported))
        {
            bridge.Reported = true;
            yield return new JsonObject
            {
                ["stream"] = bridge.Stream,
                ["direction"] = bridge.Direction,
                ["subject"] = bridge.Subject,
                ["error"] = bridge.Completion.Exception?.GetBaseException().Message,
            };
        }
    }

    /// <summary>Each bridge's figures, keyed by stream, for the status.</summary>
    public Dictionary<string, BridgeStatus> Figures()
    {
        var figures = new Dictionary<string, BridgeStatus>(StringComparer.Ordinal);
        Bridge[] current;
        lock (gate)
        {
            current = [.. bridges];
        }

        foreach (var bridge in current)
        {
            var running = !bridge.Completion.IsCompleted;
            var error = bridge.Completion.IsFaulted ? bridge.Completion.Exception?.GetBaseException().Message : null;
            figures[bridge.Stream] = bridge.Handle switch
            {
                NatsPublisher p => new BridgeStatus
                {
                    Direction = bridge.Direction, Subject = bridge.Subject, Delivery = bridge.Delivery, Running = running, Error = error,
                    Frames = p.FramesPublished, FramesSkipped = p.FramesSkipped,
                },
                NatsSubscriber s => new BridgeStatus
                {
                    Direction = bridge.Direction, Subject = bridge.Subject, Delivery = bridge.Delivery, Running = running, Error = error,
                    Frames = s.FramesWritten, FramesLost = s.FramesLost, FramesDuplicate = s.FramesDuplicate,
                },
                _ => new BridgeStatus { Direction = bridge.Direction, Subject = bridge.Subject, Delivery = bridge.Delivery, Running = running, Error = error },
            };
        }

        return figures;
    }

    /// <summary>Stops every bridge: the publishers stop reading, the subscribers stop writing (the streams stay, the manager owns them).</summary>
    public void Dispose()
    {
        foreach (var bridge in bridges)
        {
            bridge.Handle.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }

        lock (gate)
        {
            bridges.Clear();
        }
    }

    private static string DeliveryName(Delivery delivery) => delivery == Delivery.Lossless ? "lossless" : "latest";

    private sealed class Bridge(string stream, string direction, string subject, string delivery, IAsyncDisposable handle, Task completion)
    {
        public string Delivery { get; } = delivery;

        public string Stream { get; } = stream;

        public string Direction { get; } = direction;

        public string Subject { get; } = subject;

        public IAsyncDisposable Handle { get; } = handle;

        public Task Completion { get; } = completion;

        public bool Reported { get; set; }
    }
}
