using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using Flowline.SharedMemory.Diagnostics;

namespace Flowline.Cli.Bench;

/// <summary>The other processes of a benchmark: this same program running another verb.</summary>
internal static class BenchChild
{
    /// <summary>Starts <c>flowline bench-peer</c> with <paramref name="arguments"/>, on the CPUs of <paramref name="affinity"/> if given.</summary>
    public static LineProcess Start(long? affinity, params string[] arguments)
    {
        var child = LineProcess.Start(StartInfo("bench-peer", arguments), "the benchmark peer");
        if (affinity is { } mask)
        {
            child.SetAffinity(mask);
        }

        return child;
    }

    /// <summary>
    /// How to start <c>flowline <paramref name="verb"/> <paramref name="arguments"/> --parent PID</c>: this
    /// program (as an apphost or as <c>dotnet Flowline.Cli.dll</c>), told to end when this process does.
    /// </summary>
    public static ProcessStartInfo StartInfo(string verb, IEnumerable<string> arguments)
    {
        var host = Environment.ProcessPath ?? throw new InvalidOperationException("cannot find this program's path");
        var info = new ProcessStartInfo(host);
        if (Path.GetFileNameWithoutExtension(host) == "dotnet")
        {
            // Run as `dotnet flowline.dll`: the child needs the assembly too.
            info.ArgumentList.Add(Assembly.GetEntryAssembly()!.Location);
        }

        info.ArgumentList.Add(verb);
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        info.ArgumentList.Add("--parent");
        info.ArgumentList.Add(Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        return info;
    }
}
