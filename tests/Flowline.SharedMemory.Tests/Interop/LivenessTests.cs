using Flowline.SharedMemory.Liveness;
using Flowline.SharedMemory.Tests.Infrastructure;

namespace Flowline.SharedMemory.Tests.Interop;

public sealed class LivenessTests : ShmTest
{
    [Fact]
    public void Current_IsAlive_AndMatchesProc()
    {
        var me = ProcessIdentity.Current;
        Assert.Equal(Environment.ProcessId, me.Pid);
        Assert.True(me.StartTicks > 0);
        Assert.True(me.IsAlive());
        Assert.Equal(me, ProcessIdentity.Of(Environment.ProcessId));
    }

    [Fact]
    public void AReusedPid_WithAnotherStartTime_IsNotAlive()
    {
        var me = ProcessIdentity.Current;
        Assert.False((me with { StartTicks = me.StartTicks + 1 }).IsAlive());
        Assert.False(new ProcessIdentity(0, 1).IsAlive());
        Assert.False(new ProcessIdentity(4_194_303, 1).IsAlive());
    }

    [Fact]
    public void PackedOwnerWords_RoundTrip()
    {
        var me = ProcessIdentity.Current;
        var word = me.Pack(5);
        Assert.Equal(5, ProcessIdentity.StateOf(word));
        Assert.Equal(me, ProcessIdentity.Unpack(word));
        var max = new ProcessIdentity(4_194_303, (1UL << 39) - 1);
        Assert.Equal(max, ProcessIdentity.Unpack(max.Pack(7)));
    }

    [Theory]
    [InlineData("1234 (a b) c) S 1 2 3 4 5 6 7 8 9 10 111 222 16 17 18 19 20 21 987654 23 333 25", 'S', 111UL, 222UL, 987654UL, 333L)]
    [InlineData("7 (worker) Z 1 2 3 4 5 6 7 8 9 10 1 2 16 17 18 19 20 21 42 23 0 25\n", 'Z', 1UL, 2UL, 42UL, 0L)]
    public void ProcStat_ParsesFieldsAfterAnyCommandName(string text, char state, ulong utime, ulong stime, ulong start, long rss)
    {
        Assert.True(ProcStat.TryParse(System.Text.Encoding.ASCII.GetBytes(text), out var stat));
        Assert.Equal(new ProcStat(state, utime, stime, start, rss), stat);
        Assert.Equal(state == 'Z', stat.HasExited);
    }

    [Fact]
    public void ProcStat_RejectsTruncatedText() => Assert.False(ProcStat.TryParse("12 (x) S 1 2"u8, out _));

    [Fact]
    public void ADeadChild_IsNotAlive()
    {
        var peer = StartPeer("create", "--name", "x", "--mode", "create");
        peer.Expect("created");
        Assert.True(peer.WaitForExit(Bound));
        var identity = ProcessIdentity.Of(peer.Pid);
        Assert.True(identity is null || !identity.Value.IsAlive());
    }

    [Fact]
    public void ParentWatch_EndsAChildWhoseParentDies()
    {
        var parent = StartPeer("spawn", "--name", "x");
        var line = parent.Expect("child ");
        var childPid = int.Parse(line["child ".Length..], System.Globalization.CultureInfo.InvariantCulture);
        var child = ProcessIdentity.Of(childPid);
        Assert.NotNull(child);
        Assert.True(child.Value.IsAlive());

        try
        {
            parent.Kill();
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
            while (child.Value.IsAlive() && DateTime.UtcNow < deadline)
            {
                Thread.Sleep(10);
            }

            Assert.False(child.Value.IsAlive(), $"child {childPid} outlived its parent");
        }
        finally
        {
            if (child.Value.IsAlive())
            {
                System.Diagnostics.Process.GetProcessById(childPid).Kill();
            }
        }
    }
}
