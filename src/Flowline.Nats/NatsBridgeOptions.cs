using NATS.Client.Core;

namespace Flowline.Nats;

/// <summary>How a bridge connects to NATS and which subject it uses. Immutable; the defaults are documented on each property.</summary>
public sealed record NatsBridgeOptions
{
    /// <summary>The server's URL, e.g. <c>nats://127.0.0.1:4222</c> (<c>tls://</c> for TLS). Default <c>nats://127.0.0.1:4222</c>.</summary>
    public string Url { get; init; } = "nats://127.0.0.1:4222";

    /// <summary>The subject the frames travel on. Required.</summary>
    public string Subject { get; init; } = "";

    /// <summary>The connection's name, as the server shows it. Default <c>flowline-bridge</c>.</summary>
    public string ClientName { get; init; } = "flowline-bridge";

    /// <summary>A token to authenticate with, or null.</summary>
    public string? Token { get; init; }

    /// <summary>A user name to authenticate with (with <see cref="Password"/>), or null.</summary>
    public string? User { get; init; }

    /// <summary>The password of <see cref="User"/>, or null.</summary>
    public string? Password { get; init; }

    /// <summary>A credentials file (JWT and nkey seed, <c>.creds</c>), or null.</summary>
    public string? CredentialsFile { get; init; }

    /// <summary>An nkey file (the seed and the public key on two lines, as <c>nk -gen user -pubout</c> writes them), or null.</summary>
    public string? NKeyFile { get; init; }

    /// <summary>A CA certificate file (PEM) to verify the server with, or null for the system's.</summary>
    public string? TlsCaFile { get; init; }

    /// <summary>A client certificate file (PEM) for mutual TLS, or null.</summary>
    public string? TlsCertFile { get; init; }

    /// <summary>The key of <see cref="TlsCertFile"/> (PEM), or null.</summary>
    public string? TlsKeyFile { get; init; }

    /// <summary>Requires TLS even when the URL does not say <c>tls://</c>. Default false (TLS when the server or the URL asks for it).</summary>
    public bool RequireTls { get; init; }

    /// <summary>
    /// The delivery across hosts: <see cref="Flowline.SharedMemory.Delivery.Latest"/> (default) over core NATS, where a slow
    /// receiver loses frames and counts them; <see cref="Flowline.SharedMemory.Delivery.Lossless"/> over JetStream, with
    /// acknowledgements on both sides, a publisher that waits rather than drop, and a durable consumer that resumes where it
    /// stopped. Both sides of a subject must use the same delivery.
    /// </summary>
    public Flowline.SharedMemory.Delivery Delivery { get; init; } = Flowline.SharedMemory.Delivery.Latest;

    /// <summary>
    /// The JetStream stream that holds the subject's frames (lossless delivery only); null (default) for
    /// <c>FLOWLINE_</c> followed by the subject with every character but letters, digits, '-' and '_' made '_'.
    /// Both sides create it if it does not exist, with work-queue retention: a frame is removed once the receiver acknowledges it.
    /// </summary>
    public string? JetStreamName { get; init; }

    /// <summary>Frames the JetStream stream holds at most (lossless delivery): beyond, the publisher waits for the receiver. Default 1024.</summary>
    public long JetStreamMaxFrames { get; init; } = 1024;

    /// <summary>Bytes the JetStream stream holds at most (lossless delivery): beyond, the publisher waits for the receiver. Default 256 MiB.</summary>
    public long JetStreamMaxBytes { get; init; } = 256L << 20;

    /// <summary>
    /// Lossless delivery: frames in flight on each side. The publisher has this many publishes awaiting the server's
    /// acknowledgement (at most 32 MiB of frames: fewer for large frames), the receiver's durable consumer this many frames
    /// delivered and not yet acknowledged. 1 is one round trip to the server per frame. Default 64.
    /// </summary>
    public int Window { get; init; } = 64;

    /// <summary>The most bytes of frames a lossless publisher keeps in flight (its window is smaller for large frames).</summary>
    internal const long WindowBytes = 32L << 20;

    /// <summary>The JetStream stream's name for these options.</summary>
    public string ResolvedJetStreamName => JetStreamName ?? "FLOWLINE_" + Sanitize(Subject);

    /// <summary>A name made of letters, digits, '-' and '_' only (JetStream stream and consumer names).</summary>
    internal static string Sanitize(string name) => string.Concat(name.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' ? c : '_'));

    /// <summary>How long the first connection may take before the bridge fails to start. Default 5 s.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Checks the options; the message names the option that is wrong.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Subject) || Subject.Any(char.IsWhiteSpace) || Subject.Contains('*', StringComparison.Ordinal) || Subject.Contains('>', StringComparison.Ordinal))
        {
            throw new ArgumentException($"subject '{Subject}': a bridge needs one concrete subject (no spaces, no wildcards '*' or '>')", nameof(Subject));
        }

        if (!Uri.TryCreate(Url, UriKind.Absolute, out _))
        {
            throw new ArgumentException($"url '{Url}' is not a URL such as nats://127.0.0.1:4222", nameof(Url));
        }

        if ((User is null) != (Password is null))
        {
            throw new ArgumentException("user and password go together: give both or neither", nameof(User));
        }

        if (JetStreamName is not null && (JetStreamName.Length == 0 || Sanitize(JetStreamName) != JetStreamName))
        {
            throw new ArgumentException($"JetStream name '{JetStreamName}': use letters, digits, '-' and '_' only", nameof(JetStreamName));
        }

        if (JetStreamMaxFrames < 1 || JetStreamMaxBytes < 1)
        {
            throw new ArgumentException($"JetStream limits {JetStreamMaxFrames} frames, {JetStreamMaxBytes} bytes: both must be positive", nameof(JetStreamMaxFrames));
        }

        if (Window < 1)
        {
            throw new ArgumentException($"window {Window}: lossless delivery keeps at least 1 frame in flight", nameof(Window));
        }

        foreach (var (name, file) in new[] { ("credentials file", CredentialsFile), ("nkey file", NKeyFile), ("TLS CA file", TlsCaFile), ("TLS certificate file", TlsCertFile), ("TLS key file", TlsKeyFile) })
        {
            if (file is not null && !File.Exists(file))
            {
                throw new ArgumentException($"{name} '{file}' does not exist", name);
            }
        }
    }

    /// <summary>The NATS client's options for these settings.</summary>
    internal NatsOpts ToNatsOpts() => NatsOpts.Default with
    {
        Url = Url,
        Name = ClientName,
        ConnectTimeout = ConnectTimeout,

        // Latest delivery: a subscription whose queue is full drops its oldest frames, keeping the newest.
        // Lossless: the client's queues wait (the JetStream consumer bounds what is pulled in any case).
        SubPendingChannelFullMode = Delivery == Flowline.SharedMemory.Delivery.Lossless
            ? System.Threading.Channels.BoundedChannelFullMode.Wait
            : System.Threading.Channels.BoundedChannelFullMode.DropOldest,
        AuthOpts = NatsAuthOpts.Default with
        {
            Token = Token,
            Username = User,
            Password = Password,
            CredsFile = CredentialsFile,
            NKeyFile = NKeyFile,
        },
        TlsOpts = NatsTlsOpts.Default with
        {
            CaFile = TlsCaFile,
            CertFile = TlsCertFile,
            KeyFile = TlsKeyFile,
            Mode = RequireTls ? TlsMode.Require : TlsMode.Auto,
        },
    };

    private static string Reasons(Exception e)
    {
        var reasons = new List<string>();
        for (Exception? inner = e; inner is not null; inner = inner.InnerException)
        {
            if (!string.IsNullOrWhiteSpace(inner.Message) && !reasons.Contains(inner.Message))
            {
                reasons.Add(inner.Message.Trim());
            }
        }

        return string.Join(": ", reasons);
    }

    /// <summary>Connects to the server; a refused or unreachable server is a <see cref="NatsBridgeException"/> that says which.</summary>
    internal async Task<NatsConnection> ConnectAsync(CancellationToken cancellationToken)
    {
        Validate();
        var connection = new NatsConnection(ToNatsOpts());
        try
        {
            await connection.ConnectAsync().AsTask().WaitAsync(ConnectTimeout + TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(false);
            return connection;
        }
        catch (Exception e) when (e is NatsException or TimeoutException)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw new NatsBridgeException($"cannot connect to NATS at {Url}: {Reasons(e)}", e);
        }
    }
}

/// <summary>A bridge could not start or had to stop: the server refused it, or the two sides' formats differ.</summary>
public sealed class NatsBridgeException : Exception
{
    /// <summary>Creates the exception.</summary>
    public NatsBridgeException()
    {
    }

    /// <summary>Creates the exception with its message.</summary>
    public NatsBridgeException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with its message and cause.</summary>
    public NatsBridgeException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
