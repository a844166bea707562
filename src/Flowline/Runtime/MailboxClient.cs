using System.Collections.Concurrent;
using Flowline.SharedMemory;

namespace Flowline.Runtime;

/// <summary>
/// The manager's side of one worker launch's mailbox: posts requests from any thread without a lock (a
/// free slot is claimed by compare-and-swap), and one listener thread per launch, started with the
/// first request, sleeps on the answer doorbell and completes the requests answered. When the worker
/// exits, every request in flight fails at once with <see cref="RequestErrorCode.ProcessExited"/>.
/// </summary>
internal sealed class MailboxClient : IDisposable
{
    private static long nextCorrelation;
    private readonly RequestMailbox mailbox;
    private readonly string node;
    private readonly ConcurrentDictionary<long, (int Slot, TaskCompletionSource<(MailboxStatus Status, byte[] Answer)> Done)> pending = new();
    private readonly object listenerGate = new();
    private Thread? listener;
    private volatile string? gone;
    private volatile bool disposed;

    public MailboxClient(ControlBlock control, string node)
    {
        mailbox = control.Mailbox;
        this.node = node;
    }

    /// <summary>A new correlation id (unique in this process).</summary>
    public static long NextCorrelationId() => Interlocked.Increment(ref nextCorrelation);

    /// <summary>Sends <paramref name="payload"/> and waits for the answer; throws <see cref="RequestException"/> on a timeout or an exit.</summary>
    public async Task<(MailboxStatus Status, byte[] Answer)> SendAsync(long correlationId, byte[] payload, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadlineNs = MonotonicClock.NowNs() + (long)(timeout.TotalSeconds * 1e9);
        ThrowIfGone();
        int slot;
        while (!mailbox.TryPost(correlationId, deadlineNs, payload, out slot))
        {
            // Every slot holds a request in flight: wait for one (a bounded mailbox, not a silent drop).
            if (MonotonicClock.NowNs() >= deadlineNs)
            {
                throw new RequestException(RequestErrorCode.Timeout, $"node '{node}' has {RequestMailbox.SlotCount} requests in flight; no slot came free within {timeout.TotalMilliseconds:0} ms");
            }

            await Task.Delay(1, cancellationToken).ConfigureAwait(false);
            ThrowIfGone();
        }

        var done = new TaskCompletionSource<(MailboxStatus, byte[])>(TaskCreationOptions.RunContinuationsAsynchronously);
        pending[correlationId] = (slot, done);
        EnsureListener();
        // The answer may have come between the listener's last look and our registration: the listener
        // would then sleep a whole slice on a doorbell that already rang. Look once ourselves.
        if (mailbox.TryTakeAnswer(slot, correlationId, out var early, out var earlyAnswer) && pending.TryRemove(correlationId, out _))
        {
            return (early, earlyAnswer);
        }

        if (gone is { } why)
        {
            Fail(why); // the worker exited while we posted
        }

        var left = TimeSpan.FromTicks(Math.Max(0, (deadlineNs - MonotonicClock.NowNs()) / 100));
        try
        {
            return await done.Task.WaitAsync(left, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            pending.TryRemove(correlationId, out _);
            mailbox.Abandon(slot, correlationId);
            throw new RequestException(RequestErrorCode.Timeout, $"node '{node}' did not answer within {timeout.TotalMilliseconds:0} ms");
        }
        catch (OperationCanceledException)
        {
            pending.TryRemove(correlationId, out _);
            mailbox.Abandon(slot, correlationId);
            throw;
        }
    }

    /// <summary>Fails every request in flight, and every later one, with <see cref="RequestErrorCode.ProcessExited"/>.</summary>
    public void Fail(string why)
    {
        gone = why;
        foreach (var (correlation, entry) in pending.ToArray())
        {
            if (pending.TryRemove(correlation, out _))
            {
                entry.Done.TrySetException(new RequestException(RequestErrorCode.ProcessExited, why));
            }
        }
    }

    public void Dispose()
    {
        if (disposed)
        {
            return;
        }

        disposed = true;
        Fail(gone ?? $"node '{node}''s worker was let go");
        mailbox.WakeAnswerWaiters();
        Thread? t;
        lock (listenerGate)
        {
            t = listener;
        }

        t?.Join(TimeSpan.FromSeconds(1));
    }

    private void ThrowIfGone()
    {
        if (gone is { } why)
        {
            throw new RequestException(RequestErrorCode.ProcessExited, why);
        }
    }

    private void EnsureListener()
    {
        if (Volatile.Read(ref listener) is not null)
        {
            return;
        }

        lock (listenerGate)
        {
            if (listener is null && !disposed)
            {
                listener = new Thread(Listen) { IsBackground = true, Name = $"flowline-answers-{node}" };
                listener.Start();
            }
        }
    }

    private void Listen()
    {
        while (!disposed)
        {
            var observed = mailbox.AnswerDoorbell;
            foreach (var (correlation, entry) in pending)
            {
                if (mailbox.TryTakeAnswer(entry.Slot, correlation, out var status, out var answer) && pending.TryRemove(correlation, out _))
                {
                    entry.Done.TrySetResult((status, answer));
                }
            }

            mailbox.WaitForAnswers(observed, TimeSpan.FromMilliseconds(100));
        }
    }
}
