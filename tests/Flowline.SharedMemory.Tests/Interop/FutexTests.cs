using System.Diagnostics;
using System.Runtime.InteropServices;
using Flowline.SharedMemory.Interop;

namespace Flowline.SharedMemory.Tests.Interop;

public sealed unsafe class FutexTests : IDisposable
{
    private readonly int* word = (int*)NativeMemory.AlignedAlloc(64, 64);

    public FutexTests() => *word = 0;

    public void Dispose() => NativeMemory.AlignedFree(word);

    [Fact]
    public void Wait_WhenTheWordDiffers_ReturnsValueChangedAtOnce()
    {
        *word = 5;
        Assert.Equal(FutexWaitResult.ValueChanged, Futex.Wait(word, 4, TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public void Wait_WithNobodyWaking_TimesOutAfterTheTimeout()
    {
        var watch = Stopwatch.StartNew();
        Assert.Equal(FutexWaitResult.TimedOut, Futex.Wait(word, 0, TimeSpan.FromMilliseconds(50)));
        Assert.InRange(watch.Elapsed, TimeSpan.FromMilliseconds(45), TimeSpan.FromSeconds(5));
        Assert.Equal(FutexWaitResult.TimedOut, Futex.Wait(word, 0, TimeSpan.Zero));
    }

    [Fact]
    public void Wake_WakesAWaiterOnAnotherThread()
    {
        var address = (nint)word;
        var result = FutexWaitResult.TimedOut;
        var waiter = new Thread(() => result = Futex.Wait((int*)address, 0, TimeSpan.FromSeconds(20)));
        waiter.Start();
        var woken = 0;
        var watch = Stopwatch.StartNew();
        while (woken == 0 && watch.Elapsed < TimeSpan.FromSeconds(20))
        {
            Thread.Sleep(5);
            woken = Futex.Wake(word, 1);
        }

        Assert.True(waiter.Join(TimeSpan.FromSeconds(20)));
        Assert.Equal(1, woken);
        Assert.Equal(FutexWaitResult.Woken, result);
    }

    [Fact]
    public void Wake_WithNoWaiters_ReturnsZero() => Assert.Equal(0, Futex.Wake(word));

    [Fact]
    public void Wait_InterruptedBySignals_ResumesAndStillWaitsTheWholeTimeout()
    {
        // A handler installed without SA_RESTART makes the futex call fail with EINTR. The handler is
        // libc's getpid: a native function that ignores its argument and touches nothing.
        const int Signal = 63; // SIGRTMAX - 1, unused by the runtime
        var handler = NativeLibrary.GetExport(NativeLibrary.Load("libc.so.6"), "getpid");
        var action = new SigAction { Handler = handler, Flags = 0 };
        SigAction previous;
        Assert.Equal(0, sigaction(Signal, &action, &previous));
        try
        {
            var address = (nint)word;
            var interruptedBefore = Futex.InterruptedWaits;
            var tid = 0;
            var result = FutexWaitResult.Woken;
            var watch = new Stopwatch();
            var waiter = new Thread(() =>
            {
                Volatile.Write(ref tid, LibC.GetTid());
                watch.Start();
                result = Futex.Wait((int*)address, 0, TimeSpan.FromMilliseconds(400));
                watch.Stop();
            });
            waiter.Start();
            while (Volatile.Read(ref tid) == 0)
            {
                Thread.Sleep(1);
            }

            for (var i = 0; i < 5; i++)
            {
                Thread.Sleep(40);
                Assert.Equal(0, tgkill(Environment.ProcessId, tid, Signal));
            }

            Assert.True(waiter.Join(TimeSpan.FromSeconds(20)));
            Assert.Equal(FutexWaitResult.TimedOut, result);
            Assert.True(watch.Elapsed >= TimeSpan.FromMilliseconds(390), $"the wait ended after {watch.Elapsed.TotalMilliseconds:0} ms");
            Assert.True(Futex.InterruptedWaits > interruptedBefore, "no signal interrupted the wait: the test did not exercise EINTR");
        }
        finally
        {
            sigaction(Signal, &previous, null);
        }
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int tgkill(int tgid, int tid, int signal);

    [DllImport("libc", SetLastError = true)]
    private static extern int sigaction(int signal, SigAction* action, SigAction* previous);

    // glibc's struct sigaction on x64 and arm64: handler, 128-byte mask, flags, restorer.
    [StructLayout(LayoutKind.Sequential)]
    private struct SigAction
    {
        public nint Handler;
        public fixed ulong Mask[16];
        public int Flags;
        public nint Restorer;
    }
}
