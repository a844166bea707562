using System.Text.Json.Nodes;
using System.Threading.Channels;

namespace Flowline.ControlPlane;

/// <summary>One event of the service's stream: what <c>GET /events</c> sends.</summary>
/// <param name="Id">Its number (1, 2, ...); null for the unnumbered initial snapshot.</param>
/// <param name="Type">The SSE event name (<c>snapshot</c>, <c>worker_failed</c>, ...).</param>
/// <param name="Json">Its data, serialised once.</param>
internal sealed record ServiceEvent(long? Id, string Type, string Json);

/// <summary>
/// The service's event stream: a history of the last events (replayed after <c>Last-Event-ID</c>) and
/// a bounded queue per subscriber. Publishing never waits: a subscriber whose queue is full is cut off
/// (its stream ends and its client resumes from the history with <c>Last-Event-ID</c>), so a slow
/// subscriber slows neither the pipeline nor the other subscribers, and loses nothing silently.
/// </summary>
internal sealed class EventHub(int historyCapacity, int queueCapacity)
{
    // Invariant: ids are assigned, appended to history and handed to subscribers under `gate`, so each
    // subscriber sees ids in increasing order and a replay followed by live events has no gap or repeat.
    private readonly Lock gate = new();
    private readonly Queue<ServiceEvent> history = new();
    private readonly List<Channel<ServiceEvent>> subscribers = [];
    private long nextId = 1;

    /// <summary>Subscribers cut off because their queue was full.</summary>
    public long SubscribersCutOff { get; private set; }

    /// <summary>Subscribers connected now.</summary>
    public int SubscriberCount
    {
        get
        {
            lock (gate)
            {
                return subscribers.Count;
            }
        }
    }

    /// <summary>The id the next event will get.</summary>
    public long NextId
    {
        get
        {
            lock (gate)
            {
                return nextId;
            }
        }
    }

    /// <summary>Numbers <paramref name="data"/>, keeps it in the history and queues it for every subscriber.</summary>
    public long Publish(string type, JsonNode data) => Publish(type, data.ToJsonString(ControlJson.Options));

    /// <summary>Publishes an event whose payload is already JSON text; returns its id.</summary>
    public long Publish(string type, string json)
    {
        lock (gate)
        {
            var e = new ServiceEvent(nextId++, type, json);
            history.Enqueue(e);
            while (history.Count > historyCapacity)
            {
                history.Dequeue();
            }

            for (var i = subscribers.Count - 1; i >= 0; i--)
            {
                if (!subscribers[i].Writer.TryWrite(e))
                {
                    subscribers[i].Writer.TryComplete(new SubscriberTooSlowException(queueCapacity));
                    subscribers.RemoveAt(i);
                    SubscribersCutOff++;
                }
            }

            return e.Id!.Value;
        }
    }

    /// <summary>
    /// Subscribes: returns the history events numbered above <paramref name="lastEventId"/> (none when it
    /// is null) and the queue that receives every later event.
    /// </summary>
    public (IReadOnlyList<ServiceEvent> Replay, Channel<ServiceEvent> Queue) Subscribe(long? lastEventId)
    {
        var queue = Channel.CreateBounded<ServiceEvent>(new BoundedChannelOptions(queueCapacity)
        {
            SingleReader = true,
            SingleWriter = false,
            FullMode = BoundedChannelFullMode.Wait, // TryWrite fails when full: the subscriber is cut off instead
        });
        lock (gate)
        {
            var replay = lastEventId is { } last ? history.Where(e => e.Id > last).ToList() : [];
            var oldest = history.Count > 0 ? history.Peek().Id!.Value : nextId;
            if (lastEventId is { } id && Math.Max(id, 0) is var seen && seen + 1 < oldest)
            {
                // The history no longer holds what the client missed: say so (unnumbered) before the replay.
                var lost = new System.Text.Json.Nodes.JsonObject { ["after"] = seen, ["first_kept"] = oldest, ["lost"] = oldest - seen - 1 };
                replay.Insert(0, new ServiceEvent(null, "events_lost", lost.ToJsonString(ControlJson.Options)));
            }

            subscribers.Add(queue);
            return (replay, queue);
        }
    }

    /// <summary>Removes a subscriber's queue.</summary>
    public void Unsubscribe(Channel<ServiceEvent> queue)
    {
        lock (gate)
        {
            subscribers.Remove(queue);
        }

        queue.Writer.TryComplete();
    }

    /// <summary>Ends every subscriber's stream (the server is stopping).</summary>
    public void CompleteAll()
    {
        lock (gate)
        {
            foreach (var queue in subscribers)
            {
                queue.Writer.TryComplete();
            }

            subscribers.Clear();
        }
    }
}

/// <summary>A subscriber fell so far behind that its queue filled up; its stream ends.</summary>
internal sealed class SubscriberTooSlowException(int capacity)
    : Exception($"the subscriber fell {capacity} events behind and was cut off; reconnect with Last-Event-ID to resume from the history");
