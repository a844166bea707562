using System.Text.Json.Nodes;
using System.Threading.Channels;

namespace Flowline.ControlPlane.Tests;

/// <summary>The event history and per-subscriber queues behind <c>GET /events</c>.</summary>
public sealed class EventHubTests
{
    private static JsonObject Data(int n) => new() { ["n"] = n };

    private static List<ServiceEvent> Drain(Channel<ServiceEvent> queue)
    {
        var list = new List<ServiceEvent>();
        while (queue.Reader.TryRead(out var e))
        {
            list.Add(e);
        }

        return list;
    }

    [Fact]
    public void Publish_NumbersEventsFromOne_AndSerialisesTheDataOnce()
    {
        var hub = new EventHub(10, 10);
        Assert.Equal(1, hub.NextId);
        Assert.Equal(1, hub.Publish("a", Data(1)));
        Assert.Equal(2, hub.Publish("b", Data(2)));
        Assert.Equal(3, hub.NextId);
        var (replay, _) = hub.Subscribe(0);
        Assert.Equal([(1L, "a", "{\"n\":1}"), (2L, "b", "{\"n\":2}")], replay.Select(e => (e.Id!.Value, e.Type, e.Json)));
    }

    [Fact]
    public void History_KeepsOnlyTheLastCapacityEvents()
    {
        var hub = new EventHub(5, 10);
        for (var i = 1; i <= 12; i++)
        {
            hub.Publish("e", Data(i));
        }

        var (replay, _) = hub.Subscribe(0);
        Assert.Equal("events_lost", replay[0].Type);
        Assert.Null(replay[0].Id);
        Assert.Equal("{\"after\":0,\"first_kept\":8,\"lost\":7}", replay[0].Json);
        Assert.Equal([8L, 9L, 10L, 11L, 12L], replay.Skip(1).Select(e => e.Id!.Value));
        Assert.DoesNotContain(hub.Subscribe(7).Replay, e => e.Type == "events_lost");
        Assert.Equal("events_lost", hub.Subscribe(6).Replay[0].Type);
    }

    [Fact]
    public void Subscribe_AfterAnId_ReplaysOnlyLaterEvents()
    {
        var hub = new EventHub(100, 10);
        for (var i = 1; i <= 6; i++)
        {
            hub.Publish("e", Data(i));
        }

        Assert.Equal([5L, 6L], hub.Subscribe(4).Replay.Select(e => e.Id!.Value));
        Assert.Empty(hub.Subscribe(6).Replay);
        Assert.Empty(hub.Subscribe(99).Replay);
        Assert.Empty(hub.Subscribe(null).Replay);
        Assert.Equal(6, hub.Subscribe(-1).Replay.Count);
    }

    [Fact]
    public void Subscribe_ThenPublish_TheQueueGetsLiveEventsWithNoGapAfterTheReplay()
    {
        var hub = new EventHub(100, 10);
        hub.Publish("e", Data(1));
        hub.Publish("e", Data(2));
        var (replay, queue) = hub.Subscribe(1);
        hub.Publish("e", Data(3));
        Assert.Equal([2L, 3L], replay.Concat(Drain(queue)).Select(e => e.Id!.Value));
    }

    [Fact]
    public async Task SlowSubscriber_IsCutOffWhenItsQueueIsFull_WhileAnotherGetsEveryEventInOrder()
    {
        var hub = new EventHub(1000, 4);
        var (_, slow) = hub.Subscribe(null);
        var (_, fast) = hub.Subscribe(null);
        var received = new List<long>();
        for (var i = 1; i <= 20; i++)
        {
            hub.Publish("e", Data(i));
            received.AddRange(Drain(fast).Select(e => e.Id!.Value));
        }

        Assert.Equal(Enumerable.Range(1, 20).Select(i => (long)i), received);
        Assert.Equal(1, hub.SubscribersCutOff);
        Assert.Equal(1, hub.SubscriberCount);

        // The slow one keeps the 4 events it had room for, then its stream ends with the reason.
        Assert.Equal([1L, 2L, 3L, 4L], Drain(slow).Select(e => e.Id!.Value));
        Assert.True(slow.Reader.Completion.IsCompleted);
        var e = await Assert.ThrowsAsync<SubscriberTooSlowException>(() => slow.Reader.Completion);
        Assert.Contains("Last-Event-ID", e.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<SubscriberTooSlowException>(async () => await slow.Reader.WaitToReadAsync());
    }

    [Fact]
    public void SlowSubscriber_CutOff_CanResumeFromTheHistory()
    {
        var hub = new EventHub(1000, 2);
        var (_, slow) = hub.Subscribe(null);
        for (var i = 1; i <= 5; i++)
        {
            hub.Publish("e", Data(i));
        }

        var last = Drain(slow).Last().Id!.Value;
        var (replay, _) = hub.Subscribe(last);
        Assert.Equal([3L, 4L, 5L], replay.Select(e => e.Id!.Value));
    }

    [Fact]
    public void Unsubscribe_RemovesTheQueue_AndCompletesIt()
    {
        var hub = new EventHub(10, 10);
        var (_, queue) = hub.Subscribe(null);
        Assert.Equal(1, hub.SubscriberCount);
        hub.Unsubscribe(queue);
        Assert.Equal(0, hub.SubscriberCount);
        hub.Publish("e", Data(1));
        Assert.Empty(Drain(queue));
        Assert.True(queue.Reader.Completion.IsCompletedSuccessfully);
        hub.Unsubscribe(queue);
        Assert.Equal(0, hub.SubscribersCutOff);
    }

    [Fact]
    public void CompleteAll_EndsEveryQueue()
    {
        var hub = new EventHub(10, 10);
        var (_, a) = hub.Subscribe(null);
        var (_, b) = hub.Subscribe(null);
        hub.Publish("e", Data(1));
        hub.CompleteAll();
        Assert.Equal(0, hub.SubscriberCount);
        Assert.Single(Drain(a));
        Assert.Single(Drain(b));
        Assert.True(a.Reader.Completion.IsCompletedSuccessfully);
        Assert.True(b.Reader.Completion.IsCompletedSuccessfully);
    }

    [Fact]
    public async Task Publish_FromManyThreads_EverySubscriberSeesIncreasingIdsWithoutGaps()
    {
        var hub = new EventHub(10_000, 10_000);
        var (_, queue) = hub.Subscribe(null);
        await Task.WhenAll(Enumerable.Range(0, 4).Select(t => Task.Run(() =>
        {
            for (var i = 0; i < 500; i++)
            {
                hub.Publish("e", Data(i));
            }
        })));
        Assert.Equal(Enumerable.Range(1, 2000).Select(i => (long)i), Drain(queue).Select(e => e.Id!.Value));
    }
}
