using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Flowline.Nats;

/// <summary>The JetStream stream behind a lossless bridge: found, or created with work-queue retention, by either side.</summary>
internal static class JetStreamSetup
{
    /// <summary>The server's error code for a stream name already in use with another configuration.</summary>
    private const int StreamNameInUse = 10058;

    /// <summary>
    /// Makes sure the stream holding <see cref="NatsBridgeOptions.Subject"/> exists; a refusal is a <see cref="NatsBridgeException"/> saying why.
    /// Returns true if the stream holds that subject only: then its sequence numbers are the subject's, one after the other,
    /// which a window of several frames in flight relies on.
    /// </summary>
    public static async Task<bool> EnsureStreamAsync(NatsJSContext js, NatsBridgeOptions options, CancellationToken cancellationToken)
    {
        var name = options.ResolvedJetStreamName;
        var config = new StreamConfig(name, [options.Subject])
        {
            Retention = StreamConfigRetention.Workqueue,
            Storage = StreamConfigStorage.File,
            Discard = StreamConfigDiscard.New,
            MaxMsgs = options.JetStreamMaxFrames,
            MaxBytes = options.JetStreamMaxBytes,
        };
        try
        {
            try
            {
                await js.CreateStreamAsync(config, cancellationToken).ConfigureAwait(false);
                return true;
            }
            catch (NatsJSApiException e) when (e.Error.ErrCode == StreamNameInUse)
            {
                // It exists with other limits (set by hand, or by the other side with other options): use it if it fits.
                var existing = await js.GetStreamAsync(name, cancellationToken: cancellationToken).ConfigureAwait(false);
                var subjects = existing.Info.Config.Subjects ?? [];
                if (!subjects.Contains(options.Subject) || existing.Info.Config.Retention != StreamConfigRetention.Workqueue)
                {
                    throw new NatsBridgeException(
                        $"JetStream stream '{name}' exists but does not hold subject '{options.Subject}' with work-queue retention (subjects [{string.Join(", ", subjects)}], " +
                        $"retention {existing.Info.Config.Retention}): name another stream (JetStream name) or remove it");
                }

                return subjects.Count == 1;
            }
        }
        catch (NatsJSApiException e)
        {
            throw new NatsBridgeException($"lossless delivery on '{options.Subject}': the server refused the JetStream stream '{name}': {e.Error.Description} (code {e.Error.Code}/{e.Error.ErrCode})", e);
        }
        catch (NatsNoRespondersException e)
        {
            throw new NatsBridgeException($"lossless delivery on '{options.Subject}' needs JetStream, which the server at {options.Url} does not offer (start it with -js)", e);
        }
    }
}
