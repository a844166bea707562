using System.Runtime.CompilerServices;
using Flowline.SharedMemory.Interop;

namespace Flowline.SharedMemory;

/// <summary>The state of one slot of a <see cref="RequestMailbox"/>.</summary>
public enum MailboxSlotState
{
    /// <summary>Free to be claimed by a client.</summary>
    Free = 0,

    /// <summary>Claimed by a client, which is writing its request.</summary>
    Writing = 1,

    /// <summary>A request waits for the worker.</summary>
    Posted = 2,

    /// <summary>The worker took the request and is handling it.</summary>
    Taken = 3,

    /// <summary>The worker answered; the client takes the answer and frees the slot.</summary>
    Answered = 4,

    /// <summary>The client gave up (timeout) while the worker handled it; the worker frees it when it answers.</summary>
    Abandoned = 5,
}

/// <summary>How a request ended, as the worker writes it in its slot.</summary>
public enum MailboxStatus
{
    /// <summary>Handled: the answer is the result.</summary>
    Ok = 0,

    /// <summary>No handler for the operation.</summary>
    NoHandler = 1,

    /// <summary>The request was malformed or its arguments invalid.</summary>
    InvalidRequest = 2,

    /// <summary>The handler failed.</summary>
    HandlerError = 3,

    /// <summary>The request's deadline had passed when the worker came to it.</summary>
    Timeout = 4,
}

/// <summary>A request a worker took from its mailbox.</summary>
/// <param name="Slot">The slot to answer in.</param>
/// <param name="CorrelationId">The client's correlation id.</param>
/// <param name="DeadlineNs">When the client stops waiting (<see cref="MonotonicClock"/>, ns).</param>
/// <param name="Payload">The request's bytes (UTF-8 JSON).</param>
public sealed record MailboxRequest(int Slot, long CorrelationId, long DeadlineNs, byte[] Payload);

/// <summary>
/// A worker's request/response mailbox, in its control block (issue 12): fixed-size slots that clients
/// of any thread of the manager's process claim without a lock (compare-and-swap on the slot's state),
/// a doorbell the worker sleeps on, and a doorbell the clients' listener sleeps on. Each slot carries a
/// correlation id and a deadline; a slot's request and answer share its payload area. Requests in
/// different workers' mailboxes never wait for each other, and a request in one slot never waits for
/// another slot's client.
/// </summary>
/// <remarks>
/// <code>
///  offset  size   what
///  0       4      request doorbell (futex): bumped by a client after each post     clients
///  4       4      answer doorbell (futex): bumped by the worker after each answer   worker
///  64      8192   slot 0: i32 state, i32 request length, i32 answer length,
///                 i32 status, i64 correlation id, i64 deadline ns, ... payload at 64
///  ...            slots 1 to 7
/// </code>
/// </remarks>
public sealed unsafe class RequestMailbox
{
    /// <summary>Slots per mailbox: requests in flight at once per worker.</summary>
    public const int SlotCount = 8;

    /// <summary>Bytes of one slot.</summary>
    public const int SlotBytes = 8192;

    /// <summary>Bytes of a slot's header.</summary>
    private const int SlotHeader = 64;

    /// <summary>The longest request or answer (UTF-8 bytes).</summary>
    public const int PayloadCapacity = SlotBytes - SlotHeader;

    /// <summary>Bytes of the whole mailbox.</summary>
    public const int TotalBytes = 64 + (SlotCount * SlotBytes);

    private const int StateField = 0;
    private const int RequestLengthField = 4;
    private const int AnswerLengthField = 8;
    private const int StatusField = 12;
    private const int CorrelationField = 16;
    private const int DeadlineField = 24;

    private readonly byte* start;

    internal RequestMailbox(byte* start) => this.start = start;

    /// <summary>The request doorbell: changes whenever a client posts.</summary>
    public int RequestDoorbell => Volatile.Read(ref Int(start));

    /// <summary>The answer doorbell: changes whenever the worker answers.</summary>
    public int AnswerDoorbell => Volatile.Read(ref Int(start + 4));

    /// <summary>The state of slot <paramref name="slot"/>.</summary>
    public MailboxSlotState StateOf(int slot) => (MailboxSlotState)Volatile.Read(ref Int(Slot(slot) + StateField));

    /// <summary>
    /// Client: posts a request in a free slot; false (and <paramref name="slot"/> -1) if every slot is busy.
    /// Throws if <paramref name="payload"/> is longer than <see cref="PayloadCapacity"/>.
    /// </summary>
    public bool TryPost(long correlationId, long deadlineNs, ReadOnlySpan<byte> payload, out int slot)
    {
        if (payload.Length > PayloadCapacity)
        {
            throw new ArgumentException($"a request is at most {PayloadCapacity} bytes, not {payload.Length}", nameof(payload));
        }

        for (var i = 0; i < SlotCount; i++)
        {
            var p = Slot(i);
            if (Interlocked.CompareExchange(ref Int(p + StateField), (int)MailboxSlotState.Writing, (int)MailboxSlotState.Free) != (int)MailboxSlotState.Free)
            {
                continue;
            }

            Volatile.Write(ref Long(p + CorrelationField), correlationId);
            Volatile.Write(ref Long(p + DeadlineField), deadlineNs);
            payload.CopyTo(new Span<byte>(p + SlotHeader, PayloadCapacity));
            Volatile.Write(ref Int(p + RequestLengthField), payload.Length);
            Volatile.Write(ref Int(p + AnswerLengthField), 0);
            Volatile.Write(ref Int(p + StatusField), 0);
            Interlocked.Exchange(ref Int(p + StateField), (int)MailboxSlotState.Posted);
            Interlocked.Increment(ref Int(start));
            Futex.Wake((int*)start);
            slot = i;
            return true;
        }

        slot = -1;
        return false;
    }

    /// <summary>
    /// Client: takes the answer to its request in <paramref name="slot"/> and frees the slot; false if it
    /// is not answered yet (or the slot holds another request, or another thread took the answer first).
    /// </summary>
    public bool TryTakeAnswer(int slot, long correlationId, out MailboxStatus status, out byte[] answer)
    {
        var p = Slot(slot);
        status = MailboxStatus.Ok;
        answer = [];
        if (Volatile.Read(ref Int(p + StateField)) != (int)MailboxSlotState.Answered || Volatile.Read(ref Long(p + CorrelationField)) != correlationId)
        {
            return false;
        }

        status = (MailboxStatus)Volatile.Read(ref Int(p + StatusField));
        var length = Math.Clamp(Volatile.Read(ref Int(p + AnswerLengthField)), 0, PayloadCapacity);
        var copy = new ReadOnlySpan<byte>(p + SlotHeader, length).ToArray();
        if (Interlocked.CompareExchange(ref Int(p + StateField), (int)MailboxSlotState.Free, (int)MailboxSlotState.Answered) != (int)MailboxSlotState.Answered)
        {
            status = MailboxStatus.Ok;
            return false; // another thread of the client took it first
        }

        answer = copy;
        return true;
    }

    /// <summary>
    /// Client: gives up its request in <paramref name="slot"/> (it timed out): a request the worker has not
    /// taken is withdrawn, an answered one is dropped, one being handled is left for the worker to free.
    /// </summary>
    public void Abandon(int slot, long correlationId)
    {
        var p = Slot(slot);
        ref var state = ref Int(p + StateField);
        if (Volatile.Read(ref Long(p + CorrelationField)) != correlationId)
        {
            return;
        }

        while (true)
        {
            var s = Volatile.Read(ref state);
            var next = s switch
            {
                (int)MailboxSlotState.Posted or (int)MailboxSlotState.Answered => (int)MailboxSlotState.Free,
                (int)MailboxSlotState.Taken => (int)MailboxSlotState.Abandoned,
                _ => -1,
            };
            if (next < 0 || Interlocked.CompareExchange(ref state, next, s) == s)
            {
                return;
            }
        }
    }

    /// <summary>Client: waits until the answer doorbell differs from <paramref name="observed"/> or the time runs out.</summary>
    public void WaitForAnswers(int observed, TimeSpan timeout)
    {
        if (AnswerDoorbell == observed)
        {
            Futex.Wait((int*)(start + 4), observed, timeout);
        }
    }

    /// <summary>Wakes whoever waits on the answer doorbell (a listener being stopped).</summary>
    public void WakeAnswerWaiters() => Futex.Wake((int*)(start + 4));

    /// <summary>Worker: waits until the request doorbell differs from <paramref name="observed"/> or the time runs out.</summary>
    public void WaitForRequests(int observed, TimeSpan timeout)
    {
        if (RequestDoorbell == observed)
        {
            Futex.Wait((int*)start, observed, timeout);
        }
    }

    /// <summary>Wakes whoever waits on the request doorbell (a worker's request thread being stopped).</summary>
    public void WakeRequestWaiters() => Futex.Wake((int*)start);

    /// <summary>Worker: takes the next posted request, if any.</summary>
    public bool TryTake(out MailboxRequest? request)
    {
        for (var i = 0; i < SlotCount; i++)
        {
            var p = Slot(i);
            if (Interlocked.CompareExchange(ref Int(p + StateField), (int)MailboxSlotState.Taken, (int)MailboxSlotState.Posted) != (int)MailboxSlotState.Posted)
            {
                continue;
            }

            var length = Math.Clamp(Volatile.Read(ref Int(p + RequestLengthField)), 0, PayloadCapacity);
            request = new MailboxRequest(i, Volatile.Read(ref Long(p + CorrelationField)), Volatile.Read(ref Long(p + DeadlineField)), new ReadOnlySpan<byte>(p + SlotHeader, length).ToArray());
            return true;
        }

        request = null;
        return false;
    }

    /// <summary>
    /// Worker: answers the request in <paramref name="slot"/>. An answer longer than
    /// <see cref="PayloadCapacity"/> must be cut by the caller (it throws here). A slot its client
    /// abandoned is freed instead.
    /// </summary>
    public void Answer(int slot, long correlationId, MailboxStatus status, ReadOnlySpan<byte> answer)
    {
        if (answer.Length > PayloadCapacity)
        {
            throw new ArgumentException($"an answer is at most {PayloadCapacity} bytes, not {answer.Length}", nameof(answer));
        }

        var p = Slot(slot);
        if (Volatile.Read(ref Long(p + CorrelationField)) != correlationId)
        {
            return;
        }

        answer.CopyTo(new Span<byte>(p + SlotHeader, PayloadCapacity));
        Volatile.Write(ref Int(p + AnswerLengthField), answer.Length);
        Volatile.Write(ref Int(p + StatusField), (int)status);
        if (Interlocked.CompareExchange(ref Int(p + StateField), (int)MailboxSlotState.Answered, (int)MailboxSlotState.Taken) != (int)MailboxSlotState.Taken)
        {
            // Abandoned by its client: nobody will take the answer.
            Interlocked.CompareExchange(ref Int(p + StateField), (int)MailboxSlotState.Free, (int)MailboxSlotState.Abandoned);
        }

        Interlocked.Increment(ref Int(start + 4));
        Futex.Wake((int*)(start + 4));
    }

    private byte* Slot(int slot)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(slot);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(slot, SlotCount);
        return start + 64 + (slot * SlotBytes);
    }

    private static ref int Int(byte* p) => ref Unsafe.AsRef<int>(p);

    private static ref long Long(byte* p) => ref Unsafe.AsRef<long>(p);
}
