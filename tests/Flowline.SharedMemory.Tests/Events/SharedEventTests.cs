using System.Diagnostics;
using Flowline.SharedMemory.Tests.Infrastructure;

namespace Flowline.SharedMemory.Tests.Events;

public sealed class SharedEventTests : ShmTest
{
    private SharedEvent NewEvent(string name = "e", bool initial = false) => Own(SharedEvent.Open(Ns, name, RegionMode.Create, initial));

    [Fact]
    public void SetAndReset_ToggleTheFlag()
    {
        var evt = NewEvent();
        Assert.False(evt.IsSet);
        evt.Set();
        Assert.True(evt.IsSet);
        Assert.Equal(0, evt.PendingActivations);
        evt.Reset();
        Assert.False(evt.IsSet);
    }

    [Fact]
    public void Signal_CountsActivations_AndResetTakesOneAtATime()
    {
        var evt = NewEvent();
        evt.Signal();
        evt.Signal();
        evt.Signal();
        Assert.Equal(3, evt.PendingActivations);
        Assert.True(evt.IsSet);

        evt.Reset();
        Assert.Equal(2, evt.PendingActivations);
        Assert.True(evt.IsSet);
        evt.Reset();
        evt.Reset();
        Assert.Equal(0, evt.PendingActivations);
        Assert.False(evt.IsSet);
        evt.Reset();
        Assert.Equal(0, evt.PendingActivations);
    }

    [Fact]
    public void InitialState_StartsSetWithOneActivation()
    {
        var evt = NewEvent(initial: true);
        Assert.True(evt.IsSet);
        Assert.Equal(1, evt.PendingActivations);
        using var attached = SharedEvent.Open(Ns, "e", RegionMode.Attach, initialState: false);
        Assert.True(attached.IsSet);
    }

    [Fact]
    public void Wait_ReturnsAtOnceWhenSet_WithoutConsuming()
    {
        var evt = NewEvent();
        evt.Signal();
        Assert.True(evt.Wait(TimeSpan.Zero));
        Assert.True(evt.Wait(Bound));
        Assert.Equal(1, evt.PendingActivations);
    }

    [Fact]
    public void Wait_TimesOutWhenClear()
    {
        var evt = NewEvent();
        var watch = Stopwatch.StartNew();
        Assert.False(evt.Wait(TimeSpan.FromMilliseconds(100)));
        Assert.InRange(watch.Elapsed, TimeSpan.FromMilliseconds(90), TimeSpan.FromSeconds(10));
        Assert.False(evt.Wait(TimeSpan.Zero));
    }

    [Fact]
    public void Wait_WakesWhenAnotherThreadSets()
    {
        var evt = NewEvent();
        using var other = SharedEvent.Open(Ns, "e", RegionMode.Attach);
        var setter = new Thread(() =>
        {
            Thread.Sleep(100);
            other.Set();
        });
        setter.Start();
        Assert.True(evt.Wait(Bound));
        Assert.True(setter.Join(Bound));
    }

    [Fact]
    public void WaitActivation_TakesExactlyOnePerSignal()
    {
        var evt = NewEvent();
        evt.Signal();
        evt.Signal();
        Assert.True(evt.WaitActivation(Bound));
        Assert.True(evt.WaitActivation(Bound));
        Assert.False(evt.WaitActivation(TimeSpan.FromMilliseconds(20)));
        Assert.False(evt.IsSet);
        Assert.False(evt.TryTakeActivation());
    }

    [Fact]
    public void Set_WithoutSignal_DoesNotSatisfyWaitActivation()
    {
        var evt = NewEvent();
        evt.Set();
        Assert.False(evt.WaitActivation(TimeSpan.FromMilliseconds(20)));
        Assert.True(evt.IsSet);
    }

    [Fact]
    public void ConcurrentConsumers_TakeEveryActivationExactlyOnce()
    {
        var evt = NewEvent();
        const int Activations = 2_000;
        var taken = 0;
        var consumers = Enumerable.Range(0, 3).Select(_ => new Thread(() =>
        {
            while (evt.WaitActivation(TimeSpan.FromMilliseconds(500)))
            {
                Interlocked.Increment(ref taken);
            }
        })).ToList();
        consumers.ForEach(t => t.Start());
        for (var i = 0; i < Activations; i++)
        {
            evt.Signal();
        }

        Assert.All(consumers, t => Assert.True(t.Join(Bound)));
        Assert.Equal(Activations, taken);
        Assert.Equal(0, evt.PendingActivations);
    }

    [Fact]
    public void Wait_WhenCancelled_Throws()
    {
        var evt = NewEvent();
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        var watch = Stopwatch.StartNew();
        Assert.ThrowsAny<OperationCanceledException>(() => evt.Wait(Bound, cts.Token));
        Assert.ThrowsAny<OperationCanceledException>(() => evt.WaitActivation(Bound, new CancellationToken(true)));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5));
    }

    [Fact]
    public void Clear_DropsTheFlagAndEveryActivation()
    {
        var evt = NewEvent();
        evt.Signal();
        evt.Signal();
        evt.Clear();
        Assert.False(evt.IsSet);
        Assert.Equal(0, evt.PendingActivations);
        Assert.Contains("clear, 0 pending", evt.ToString(), StringComparison.Ordinal);
    }
}
