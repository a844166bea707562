using System.Globalization;

namespace Flowline.Cli.Tests;

/// <summary><c>flowline bench nats</c> runs end to end on a small load and leaves nothing behind.</summary>
public sealed class BenchNatsTests
{
    [Fact]
    public void BenchNats_SmallRun_PrintsEverySizeAndTransportWithPositiveRates()
    {
        var server = new[] { "/usr/sbin/nats-server", "/usr/bin/nats-server" }.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException("nats-server is not installed (Debian: apt-get install nats-server); .ci/run installs it");
        // Twelve measurements against a real server: 20 to 30 s on a quiet machine, more beside the rest of the suite.
        var result = Cli.RunWithin(TimeSpan.FromMinutes(4), null, "bench", "nats", "--server", server, "--megabytes", "1", "--latency-seconds", "0.2");
        Assert.True(result.ExitCode == 0, result.Error);
        var rows = result.Output.Split('\n').Where(l => l.Contains('|', StringComparison.Ordinal) && !l.StartsWith("size", StringComparison.Ordinal)).ToList();
        Assert.Equal(12, rows.Count);
        foreach (var transport in new[] { "tcp (limit)", "nats latest", "nats lossless", "nats lossless r64" })
        {
            Assert.Equal(3, rows.Count(r => r[10..28].Trim() == transport));
        }

        // Every transport moved frames: the frames/s column is positive.
        foreach (var row in rows)
        {
            var rate = double.Parse(row[28..42].Trim(), NumberStyles.AllowThousands, CultureInfo.InvariantCulture);
            Assert.True(rate > 0, row);
        }

        Assert.DoesNotContain(Directory.EnumerateDirectories("/dev/shm/flowline"), d => Path.GetFileName(d).StartsWith("bench-nats-", StringComparison.Ordinal));
    }
}
