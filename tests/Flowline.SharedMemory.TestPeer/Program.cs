using System.Globalization;
using Flowline.SharedMemory;
using Flowline.SharedMemory.Liveness;
using Flowline.SharedMemory.TestPeer;

// A child process for the shared-memory tests. Usage: <role> --key value ...
// Every role exits when its parent (--parent) dies, and prints one line per milestone.
var role = args.Length > 0 ? args[0] : "";
var options = new Dictionary<string, string>(StringComparer.Ordinal);
for (var i = 1; i + 1 < args.Length; i += 2)
{
    options[args[i].TrimStart('-')] = args[i + 1];
}

string Get(string key, string fallback = "") => options.TryGetValue(key, out var v) ? v : fallback;
long GetLong(string key, long fallback) => options.TryGetValue(key, out var v) ? long.Parse(v, CultureInfo.InvariantCulture) : fallback;
bool GetBool(string key) => options.TryGetValue(key, out var v) && bool.Parse(v);

if (options.TryGetValue("parent", out var parent))
{
    ParentWatch.ExitWhenParentDies(int.Parse(parent, CultureInfo.InvariantCulture));
}

var ns = Get("ns");
var name = Get("name");
var format = new FrameFormat(ElementType.UInt64, (int)GetLong("elements", 8));
RegionModes.TryParse(Get("mode", "attach"), out var mode);
var streamOptions = new StreamOptions { CapacityFrames = (int)GetLong("capacity", StreamOptions.DefaultCapacityFrames) };

switch (role)
{
    case "write":
    {
        using var stream = SharedStream.Open(ns, name, format, mode, streamOptions);
        using var writer = stream.OpenWriter<ulong>();
        Console.WriteLine("ready");
        var count = GetLong("count", long.MaxValue);
        var uniform = Get("pattern", "checksum") == "uniform";
        var frame = new ulong[format.ElementCount];
        var rate = GetLong("rate", 0);
        var pacer = rate > 0 ? new Flowline.SharedMemory.Diagnostics.Pacer(rate) { WakeLeadNs = GetLong("wake-lead-us", 45) * 1000 } : null;
        var batch = (int)GetLong("batch", 0);
        var frames = new ulong[format.ElementCount * Math.Max(1, batch)];

        // --wake-early true: the pacer wakes the readers a little before each frame (decision 138), as a paced source does.
        Action? wakeEarly = GetBool("wake-early") ? writer.WakeReadersEarly : null;
        for (long s = 0; s < count; s++)
        {
            pacer?.WaitNext(wakeEarly);
            if (batch > 0)
            {
                // Lossless batches (WriteBatch): frames s .. s + n - 1, one cursor store per batch.
                var n = (int)Math.Min(batch, count - s);
                for (var k = 0; k < n; k++)
                {
                    TestPayload.Fill(writer.Position + k, frames.AsSpan(k * format.ElementCount, format.ElementCount));
                }

                if (writer.WriteBatch(frames.AsSpan(0, n * format.ElementCount), out _) != WriteStatus.Ok)
                {
                    return 3;
                }

                s += n - 1;
                continue;
            }

            if (writer.Look(out var slot) != WriteStatus.Ok)
            {
                return 3;
            }

            if (uniform)
            {
                TestPayload.FillUniform(writer.Position, slot);
            }
            else
            {
                TestPayload.Fill(writer.Position, slot);
            }

            writer.Publish(new FrameStamp((ulong)writer.Position * 10, 0));
        }

        if (GetBool("close"))
        {
            writer.Close();
        }

        Console.WriteLine($"written {count}");
        if (GetBool("hang"))
        {
            Thread.Sleep(Timeout.Infinite);
        }

        return 0;
    }

    case "read":
    {
        using var stream = SharedStream.Open(ns, name, format, mode, streamOptions);
        var delivery = Get("delivery", "lossless") == "latest" ? Delivery.Latest : Delivery.Lossless;
        var wait = Enum.Parse<WaitPolicy>(Get("wait", "hybrid"), ignoreCase: true);
        var spin = TimeSpan.FromMicroseconds(GetLong("spin-us", 50));
        using var reader = stream.OpenReader<ulong>(new ReaderOptions { Delivery = delivery, WaitPolicy = wait, SpinTime = spin });
        Console.WriteLine("ready");
        var count = GetLong("count", 0);
        var frame = new ulong[format.ElementCount];
        long errors = 0;
        for (long i = 0; i < count; i++)
        {
            var status = reader.ReadInto(frame, out var header, TimeSpan.FromSeconds(30));
            if (status != ReadStatus.Ok)
            {
                Console.WriteLine($"status {status}");
                return 4;
            }

            if (!TestPayload.Verify(header.Sequence, frame))
            {
                errors++;
            }
        }

        Console.WriteLine($"read {count} errors {errors}");
        Console.WriteLine($"waits early_wakes {WaitCounters.EarlyWakes} early_wake_hits {WaitCounters.EarlyWakeHits}");
        if (GetBool("hang"))
        {
            Thread.Sleep(Timeout.Infinite);
        }

        return errors == 0 ? 0 : 5;
    }

    case "read-latest":
    {
        // Reads the newest frame until the writer closes the stream; frames must be uniform (pattern uniform)
        // and their sequences must increase.
        using var stream = SharedStream.Open(ns, name, format, mode, streamOptions);
        using var reader = stream.OpenReader<ulong>(new ReaderOptions { Delivery = Delivery.Latest });
        Console.WriteLine("ready");
        var frame = new ulong[format.ElementCount];
        long read = 0, errors = 0, last = -1;
        while (true)
        {
            var status = reader.ReadInto(frame, out var header, TimeSpan.FromSeconds(30));
            if (status == ReadStatus.EndOfStream)
            {
                break;
            }

            if (status != ReadStatus.Ok)
            {
                Console.WriteLine($"status {status}");
                return 4;
            }

            read++;
            if (!TestPayload.VerifyUniform(header.Sequence, frame) || header.Sequence <= last)
            {
                errors++;
            }

            last = header.Sequence;
        }

        Console.WriteLine($"read {read} errors {errors} last {last}");
        return errors == 0 ? 0 : 5;
    }

    case "hold-latest":
    {
        // Looks at the newest frame with latest delivery and holds it until killed.
        using var stream = SharedStream.Open(ns, name, format, mode, streamOptions);
        using var reader = stream.OpenReader<ulong>(new ReaderOptions { Delivery = Delivery.Latest });
        Console.WriteLine("ready");
        var status = reader.Look(out _, out var header, TimeSpan.FromSeconds(30));
        Console.WriteLine(status == ReadStatus.Ok ? $"held {header.Sequence}" : $"status {status}");
        Thread.Sleep(Timeout.Infinite);
        return 0;
    }

    case "create":
    {
        using var stream = SharedStream.Open(ns, name, format, RegionMode.Create, streamOptions);
        using var evt = SharedEvent.Open(ns, name + ".evt", RegionMode.Create);
        Console.WriteLine("created");
        if (GetBool("hang"))
        {
            Thread.Sleep(Timeout.Infinite);
        }

        return 0;
    }

    case "events":
    {
        using var wait = SharedEvent.Open(ns, Get("wait"), RegionMode.Attach);
        using var signal = SharedEvent.Open(ns, Get("signal"), RegionMode.Attach);
        Console.WriteLine("ready");
        var rounds = GetLong("rounds", 1);
        for (long r = 0; r < rounds; r++)
        {
            if (!wait.WaitActivation(TimeSpan.FromSeconds(30)))
            {
                Console.WriteLine("timeout");
                return 6;
            }

            signal.Signal();
        }

        Console.WriteLine("done");
        return 0;
    }

    case "lease":
    {
        // Takes the namespace as a pipeline manager would, creates a stream in it, and waits to be killed.
        using var lease = NamespaceLease.Acquire(ns, Get("url", "") is { Length: > 0 } url ? url : null);
        using var stream = SharedStream.Open(ns, name, format, RegionMode.Create, streamOptions);
        Console.WriteLine("leased");
        Thread.Sleep(Timeout.Infinite);
        return 0;
    }

    case "hang":
        Console.WriteLine("ready");
        Thread.Sleep(Timeout.Infinite);
        return 0;

    case "spawn":
    {
        // Starts a grandchild that watches this process, prints its pid, and waits to be killed.
        var info = new System.Diagnostics.ProcessStartInfo(Environment.ProcessPath!) { UseShellExecute = false };
        if (!Environment.ProcessPath!.EndsWith("TestPeer", StringComparison.Ordinal))
        {
            info.ArgumentList.Add(typeof(TestPayload).Assembly.Location);
        }

        info.ArgumentList.Add("hang");
        info.ArgumentList.Add("--parent");
        info.ArgumentList.Add(Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        var child = System.Diagnostics.Process.Start(info)!;
        Console.WriteLine($"child {child.Id}");
        Thread.Sleep(Timeout.Infinite);
        return 0;
    }

    default:
        Console.Error.WriteLine($"unknown role '{role}'");
        return 2;
}
