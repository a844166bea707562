using System.Text;
using System.Text.Json.Nodes;
using Flowline.Status;

namespace Flowline.ControlPlane.Tests;

/// <summary>
/// The trace stream's per-subscriber queues (decisions 146 and 147), without sockets: a subscriber that
/// does not drain loses batches past its byte bound and is told how many samples it lost (its own and the
/// rings'), and every sample published is either delivered or counted, never silently missing.
/// </summary>
public sealed class TraceFanoutTests
{
    private static List<TraceSample> Batch(long first, int count) =>
        [.. Enumerable.Range(0, count).Select(i => new TraceSample("input_vector", first + i, (ulong)(first + i), 1000, 2000, "copy", 50))];

    private static int Size(List<TraceSample> batch) =>
        Encoding.UTF8.GetByteCount($"event: trace\ndata: {StatusJson.Serialize<IReadOnlyList<TraceSample>>(batch)}\n\n");

    /// <summary>The SSE frames a subscriber has queued, as (event, data).</summary>
    private static List<(string Event, JsonNode Data)> Drain(TraceFanout.Subscriber subscriber)
    {
        var frames = new List<(string, JsonNode)>();
        while (subscriber.TryRead(out var frame))
        {
            var text = Encoding.UTF8.GetString(frame);
            var lines = text.Split('\n');
            Assert.StartsWith("event: ", lines[0], StringComparison.Ordinal);
            Assert.StartsWith("data: ", lines[1], StringComparison.Ordinal);
            Assert.EndsWith("\n\n", text, StringComparison.Ordinal);
            frames.Add((lines[0]["event: ".Length..], JsonNode.Parse(lines[1]["data: ".Length..])!));
        }

        return frames;
    }

    [Fact]
    public void ASlowSubscriber_LosesWhatDoesNotFit_IsToldHowMany_AndTheFastOneGetsEverything()
    {
        // Room for the first three batches of 10, and less than a lost notice more.
        var bound = Size(Batch(0, 10)) + Size(Batch(10, 10)) + Size(Batch(20, 10)) + 10;
        var fanout = new TraceFanout(queueBytes: bound);
        var slow = fanout.Subscribe();
        var fast = fanout.Subscribe();
        Assert.Equal(2, fanout.Count);

        var fastSeqs = new List<long>();
        for (var b = 0; b < 10; b++)
        {
            fanout.Publish(Batch(b * 10, 10), ringLost: 0);
            fastSeqs.AddRange(Drain(fast).SelectMany(f => f.Data.AsArray().Select(s => (long)s!["seq"]!)));
        }

        Assert.Equal(Enumerable.Range(0, 100).Select(i => (long)i), fastSeqs);

        // The slow one never read: it holds the first three batches, within its bound, and nothing else yet.
        Assert.Equal(bound - 10, slow.QueuedBytes);
        var first = Drain(slow);
        Assert.Equal(["trace", "trace", "trace"], first.Select(f => f.Event));
        Assert.Equal(Enumerable.Range(0, 30).Select(i => (long)i), first.SelectMany(f => f.Data.AsArray().Select(s => (long)s!["seq"]!)));
        Assert.Equal(0, slow.QueuedBytes);

        // Now it has room: before its next batch it is told it lost the 70 samples that did not fit.
        fanout.Publish(Batch(100, 10), ringLost: 5);
        var next = Drain(slow);
        Assert.Equal(["lost", "trace"], next.Select(f => f.Event));
        Assert.Equal(75, (long)next[0].Data["samples"]!);
        Assert.Equal(70, (long)next[0].Data["queue"]!);
        Assert.Equal(5, (long)next[0].Data["ring"]!);
        Assert.Equal(Enumerable.Range(100, 10).Select(i => (long)i), next[1].Data.AsArray().Select(s => (long)s!["seq"]!));

        // The fast one is told of the rings' loss too, before that batch.
        var fastNext = Drain(fast);
        Assert.Equal(["lost", "trace"], fastNext.Select(f => f.Event));
        Assert.Equal(5, (long)fastNext[0].Data["samples"]!);
        Assert.Equal(0, (long)fastNext[0].Data["queue"]!);

        // Every sample published reached each subscriber or was counted as lost to it.
        var slowDelivered = first.Concat(next).Where(f => f.Event == "trace").Sum(f => f.Data.AsArray().Count);
        var slowCounted = next.Where(f => f.Event == "lost").Sum(f => (long)f.Data["queue"]!);
        Assert.Equal(110, slowDelivered + slowCounted);

        fanout.Unsubscribe(slow);
        fanout.Unsubscribe(fast);
        Assert.Equal(0, fanout.Count);
    }

    [Fact]
    public void ALossWithNoBatchAfterIt_IsStillReported_AsSoonAsThereIsRoom()
    {
        var fanout = new TraceFanout(queueBytes: 200);
        var subscriber = fanout.Subscribe();

        // A batch larger than the whole queue is lost at once, and counted.
        fanout.Publish(Batch(0, 50), ringLost: 0);
        Assert.Equal(0, subscriber.QueuedBytes);

        // Traffic stops: the polls that find nothing still deliver the notice.
        fanout.Publish([], ringLost: 0);
        var frames = Drain(subscriber);
        var lost = Assert.Single(frames);
        Assert.Equal("lost", lost.Event);
        Assert.Equal(50, (long)lost.Data["samples"]!);

        // And only once.
        fanout.Publish([], ringLost: 0);
        Assert.Empty(Drain(subscriber));
        fanout.Unsubscribe(subscriber);
        Assert.False(subscriber.TryRead(out _));
    }
}
