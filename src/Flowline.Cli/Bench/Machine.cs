using System.Runtime.InteropServices;

namespace Flowline.Cli.Bench;

/// <summary>What benchmarks report about the machine they ran on.</summary>
internal static class Machine
{
    /// <summary>The CPU model, CPU count, kernel and runtime, and the steal time measured by the caller.</summary>
    public static MachineInfo Describe(bool pinned, double stealPercent)
    {
        var cpu = File.Exists("/proc/cpuinfo")
            ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown"
            : "unknown";
        var kernel = File.Exists("/proc/sys/kernel/osrelease") ? File.ReadAllText("/proc/sys/kernel/osrelease").Trim() : RuntimeInformation.OSDescription;
        return new MachineInfo(cpu, Environment.ProcessorCount, kernel, RuntimeInformation.FrameworkDescription, pinned, stealPercent);
    }
}

/// <summary>The machine-wide CPU time counters of the first line of /proc/stat, in clock ticks.</summary>
internal readonly record struct CpuTimes(long Total, long Steal)
{
    public static CpuTimes Read()
    {
        if (!File.Exists("/proc/stat"))
        {
            return default;
        }

        // cpu user nice system idle iowait irq softirq steal guest guest_nice
        var fields = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Take(8).Select(long.Parse).ToArray();
        return new CpuTimes(fields.Sum(), fields.Length > 7 ? fields[7] : 0);
    }

    public double StealPercentSince(CpuTimes before) =>
        Total > before.Total ? 100.0 * (Steal - before.Steal) / (Total - before.Total) : 0;
}
