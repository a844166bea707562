using System.Diagnostics;
using System.Text.Json.Nodes;
using Flowline.SharedMemory;

namespace Flowline.Tests.Runtime;

/// <summary>
/// Decision 152, with real worker processes: a kernel that starts computing a frame wakes the sleeping
/// predictive readers of its output early, if its learnt compute time fits in their spin after an early
/// wake-up (<see cref="WaitTuning.EarlyWakeSpin"/>) and is not shorter than the wake-up itself
/// (<see cref="WaitTuning.WakeOnComputeMin"/>). The first stage's input waits as <c>hybrid</c>, so
/// it is never woken early itself and passes nothing on: every early wake-up its reader gets comes from
/// its computing. Counted by the giver (<c>woke_readers_computing</c>) and the reader (<c>early_wakes</c>).
/// </summary>
public sealed class WakeReadersComputingTests : RuntimeTest
{
    [Theory]
    [InlineData(50, "predictive", true)]
    [InlineData(300, "predictive", false)] // computing outlasts a woken reader's spin: not woken
    [InlineData(0, "predictive", false)] // computing shorter than a wake-up (WaitTuning.WakeOnComputeMin): not woken
    [InlineData(50, "hybrid", false)] // a hybrid reader would only sleep again: not woken
    public void StageStartingToCompute_WakesItsSleepingPredictiveReaders_OnlyWhenItsComputingIsBetweenAWakeUpAndTheirSpin(int busyUs, string midWait, bool expectWakes)
    {
        var manager = Manager($$$"""
            plugins: [plugins/Flowline.Tests.Plugin.dll]
            shared_memory:
              - {name: in, shape: [4], dtype: float32, wait: hybrid}
              - {name: mid, shape: [4], dtype: float32, wait: {{{midWait}}}}
              - {name: out, shape: [4], dtype: float32}
            kernels:
              - {name: first, kind: test.busy, input: in, output: mid, parameters: {busy_us: {{{busyUs}}}}}
              - {name: second, kind: test.square, input: mid, output: out}
            """);
        manager.Build();
        using var input = SharedStream.Attach(manager.Namespace, "in");
        using var writer = input.OpenWriter<float>();
        manager.Start();

        // A frame every 2 ms or so (the second stage sleeps between them), until the wake-ups are counted
        // (expected) or 300 frames went through without any (not expected); bounded either way.
        var frame = new float[4];
        var watch = Stopwatch.StartNew();
        JsonNode first, second;
        var written = 0;
        while (true)
        {
            frame[0] = written++;
            writer.Write(frame);
            Thread.Sleep(2);
            if (written % 50 != 0)
            {
                continue;
            }

            var workers = manager.Status().Json()["workers"]!;
            (first, second) = (workers["first"]!, workers["second"]!);
            var done = expectWakes
                ? Given(first) > 0 && Waits(second, "early_wakes") > 0
                : (long?)second["frames_processed"] >= 300;
            if (done)
            {
                break;
            }

            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(60), $"after 60 s and {written} frames: first woke its readers on {Given(first)} frames, second was woken early {Waits(second, "early_wakes")} times and processed {second["frames_processed"]} frames");
        }

        manager.Stop();
        if (expectWakes)
        {
            Assert.True(Given(first) <= (long)first["frames_processed"]!, "more frames woke readers than were computed");
            Assert.True(Waits(second, "early_wake_hits") <= Waits(second, "early_wakes"), "more early wake-ups found their frame than there were");
        }
        else if (busyUs == 0)
        {
            // The learnt time is a moving mean: a computation stretched by a preemption (the machine is
            // shared) can lift it above the bound for a few frames, not for one in ten.
            Assert.True(Given(first) * 10 <= (long)first["frames_processed"]!, $"first woke its readers on {Given(first)} of {first["frames_processed"]} frames");
        }
        else
        {
            Assert.Equal(0, Given(first));
        }
    }

    private static long Given(JsonNode worker) => Waits(worker, "woke_readers_computing");

    private static long Waits(JsonNode worker, string name) => (long)worker["waits"]![name]!;
}
