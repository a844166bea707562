using System.Diagnostics;
using System.Globalization;
using Flowline.Client;
using Flowline.Documents;
using Flowline.SharedMemory;
using Flowline.SharedMemory.Diagnostics;
using Flowline.SharedMemory.Liveness;
using Flowline.Status;

namespace Flowline.Cli.Bench;

/// <summary>
/// A soak: a real <c>flowline serve</c> (a child process) runs the pipeline while readers of this process
/// attach to its streams and leave them (<see cref="SoakReaders"/>), clients call <c>GET /status</c> back
/// to back, and every <see cref="SoakOptions.KillInterval"/> a worker is killed with SIGKILL and restarted
/// through <c>POST /commands/restart</c>. At the end the sources are killed, the pipeline drains, the
/// sink's count is compared with its writer's, the server is shut down, and what is left (regions,
/// processes, discovery records) is listed. Every process's resident memory is sampled each second.
/// </summary>
internal sealed class SoakBenchmark(SoakOptions options, TextWriter progress)
{
    private const int MaxProblems = 50;
    private static readonly TimeSpan ServerStartTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan DetectTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan ResumeTimeout = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan ServerExitTimeout = TimeSpan.FromSeconds(20);

    private readonly string ns = $"soak-{Environment.ProcessId}";
    private readonly Stopwatch clock = new();
    private readonly List<string> problems = [];
    private readonly Dictionary<int, MemoryTrack> memory = [];
    private readonly Dictionary<int, ProcessIdentity> workers = [];
    private readonly Dictionary<(string Stream, int Index, int Pid), long> losslessSkips = [];
    private readonly Dictionary<int, long> workerTorn = [];
    private readonly List<SoakKill> kills = [];
    private readonly List<SharedStream> watched = [];
    private int serverPid;
    private long unexpectedFailures;
    private long restartsFailed;
    private int restartsDone;

    public async Task<SoakReport> RunAsync(CancellationToken cancellation)
    {
        var steal = CpuTimes.Read();
        var pipeline = Prepare();
        var work = Directory.CreateTempSubdirectory("flowline-soak-");
        LineProcess? server = null;
        try
        {
            var document = Path.Combine(work.FullName, "pipeline.yaml");
            PipelineDocument.Save(pipeline.Spec, document);
            var runtime = Directory.CreateDirectory(Path.Combine(work.FullName, "run")).FullName;
            server = StartServer(document, runtime, out var url);
            serverPid = server.Pid;
            using var client = new RemoteManagerClient(url);
            var started = await client.StartAsync(cancellation).ConfigureAwait(false);
            clock.Start();
            var victims = Victims(started);
            var sink = pipeline.Spec.Sinks.FirstOrDefault();
            Say($"soaking {options.Document} in namespace {ns} for {options.Duration.TotalSeconds:0.#} s: {PipelineBenchmark.Pids(started).Count} workers ({(options.Lossless ? "every stream lossless" : "the document's delivery")}{(options.RateHz is { } r ? $", sources at {r:0.#} Hz" : "")}), a worker killed every {options.KillInterval.TotalSeconds:0.#} s ({string.Join(", ", victims)} in turn), {options.Readers} readers, {options.StatusClients} GET /status clients; server {url}");

            var frames = SoakFrames.Of(pipeline, ns);
            foreach (var stream in pipeline.Spec.Streams)
            {
                watched.Add(SharedStream.Attach(ns, stream.Name));
            }

            var readers = new SoakReaders(ns, [.. pipeline.Spec.Streams.Select(s => s.Name)], frames, options.Readers, options.Seed);
            using var hammerStop = new CancellationTokenSource();
            var hammers = Enumerable.Range(0, options.StatusClients).Select(_ => Hammer(client, hammerStop.Token)).ToArray();
            readers.Start();
            try
            {
                await Soak(client, victims, sink, cancellation).ConfigureAwait(false);
            }
            finally
            {
                readers.Stop();
                await hammerStop.CancelAsync().ConfigureAwait(false);
                await Task.WhenAll(hammers).ConfigureAwait(false);
            }

            var duration = clock.Elapsed.TotalSeconds;
            var final = await client.StatusAsync(CancellationToken.None).ConfigureAwait(false);
            Sample(final);
            if (final.State == "failed")
            {
                Unexpected(final, victim: null);
            }

            Say("soak over: readers and clients stopped" + (options.Lossless && sink is not null ? "; killing the sources and draining the pipeline" : ""));
            var sinkCount = options.Lossless && sink is not null ? await Drain(client, sink).ConfigureAwait(false) : null;
            foreach (var stream in watched)
            {
                stream.Dispose();
            }

            watched.Clear();
            Say("shutting the server down");
            var exitCode = await ShutDown(client, server).ConfigureAwait(false);
            var leftovers = Leftovers(server, runtime);
            foreach (var problem in readers.Problems)
            {
                Problem(problem);
            }

            var status = StatusLoad(hammers.Select(h => h.Result).ToList(), duration);
            var figures = readers.Figures();
            var pipelineSkipped = losslessSkips.Values.Sum();
            var checks = new SoakChecks(
                FramesLost: figures.Sum(f => f.FramesLost) + pipelineSkipped + (sinkCount?.Lost ?? 0),
                TornFramesAccepted: figures.Sum(f => f.TornAccepted),
                OutOfOrderFrames: figures.Sum(f => f.OutOfOrder),
                ReaderErrors: figures.Sum(f => f.Errors),
                RestartsFailed: restartsFailed,
                UnexpectedFailures: unexpectedFailures,
                StatusErrors: status.Errors,
                Leftovers: leftovers.Count);
            var notZero = checks.NotZero();
            return new SoakReport(
                "flowline bench soak",
                DateTimeOffset.UtcNow,
                Machine.Describe(pinned: false, CpuTimes.Read().StealPercentSince(steal)),
                Path.GetFullPath(options.Document),
                ns,
                options.Lossless ? "lossless" : "document",
                options.RateHz,
                Math.Round(duration, 3),
                options.KillInterval.TotalSeconds,
                PipelineBenchmark.Pids(started).Count,
                notZero.Count == 0,
                notZero,
                checks,
                restartsDone,
                kills,
                figures,
                pipelineSkipped,
                workerTorn.Values.Sum(),
                frames.Checks,
                sinkCount,
                status,
                [.. memory.Values.Select(m => m.Report())],
                exitCode,
                leftovers,
                problems);
        }
        finally
        {
            foreach (var stream in watched)
            {
                stream.Dispose();
            }

            if (server is { HasExited: false })
            {
                // Left early (an error, Ctrl-C twice): the server shuts its pipeline down on SIGTERM; SIGKILL only if it does not.
                ThisProcess.SendSignal(server.Pid, 15);
                server.WaitForExit(ServerExitTimeout);
            }

            server?.Dispose();
            try
            {
                work.Delete(recursive: true);
            }
            catch (IOException)
            {
                // A file still held open: the directory is in /tmp and holds nothing of value.
            }
        }
    }

    /// <summary>The document with this soak's namespace, every stream lossless unless told otherwise, and the sources' rate if given.</summary>
    private ValidatedPipeline Prepare()
    {
        var pipeline = PipelineDocument.Load(options.Document);
        var nodes = pipeline.Spec.Sources.Select(n => n.Name).Concat(pipeline.Spec.Kernels.Select(n => n.Name)).Concat(pipeline.Spec.Sinks.Select(n => n.Name)).ToList();
        if (options.Victims.FirstOrDefault(v => !nodes.Contains(v)) is { } unknown)
        {
            throw new InvalidOperationException($"--kill: the pipeline has no source, kernel or sink '{unknown}'; it has {string.Join(", ", nodes)}");
        }

        var spec = pipeline.Spec with { Namespace = ns };
        if (options.Lossless)
        {
            spec = PipelineBenchmark.Lossless(spec);
        }

        if (options.RateHz is { } rate)
        {
            var sources = new List<SourceSpec>();
            foreach (var source in spec.Sources)
            {
                if (!pipeline.Kinds.Sources[source.Kind].Parameters.Any(p => p.Name == "rate_hz"))
                {
                    throw new InvalidOperationException($"--rate: source '{source.Name}' (kind {source.Kind}) has no rate_hz parameter");
                }

                var parameters = source.Parameters.ToJsonObject();
                parameters["rate_hz"] = rate;
                sources.Add(source with { Parameters = Parameters.From(parameters) });
            }

            spec = spec with { Sources = [.. sources] };
        }

        return PipelineDocument.Validate(spec, pipeline.Kinds);
    }

    /// <summary>Starts <c>flowline serve</c> on a free loopback port, with discovery records in a directory of the soak's own.</summary>
    private static LineProcess StartServer(string document, string runtimeDirectory, out string url)
    {
        var info = BenchChild.StartInfo("serve", [document, "--host", "127.0.0.1", "--port", "0"]);
        info.Environment["XDG_RUNTIME_DIR"] = runtimeDirectory;
        info.Environment.Remove(Commands.ServeCommand.TokenVariable);
        info.Environment.Remove(Commands.ServeCommand.TokenFileVariable);
        var server = LineProcess.Start(info, "the soak's server");
        try
        {
            // "serving FILE at URL (namespace NS; ...)"
            var line = server.Expect("serving ", ServerStartTimeout);
            var at = line.IndexOf(" at ", StringComparison.Ordinal);
            var end = line.IndexOf(" (namespace", StringComparison.Ordinal);
            if (at < 0 || end < at)
            {
                throw new InvalidOperationException($"the server printed an unexpected line: {line}");
            }

            url = line[(at + 4)..end];
            return server;
        }
        catch
        {
            server.Dispose();
            throw;
        }
    }

    /// <summary>The workers to kill in turn: sources, then kernels, then (unless the sink's count is checked) sinks.</summary>
    private List<string> Victims(PipelineStatus status)
    {
        var processes = status.Sources.Values.Cast<WorkerEntry>().Concat(status.Workers.Values).Concat(status.Sinks.Values)
            .Where(w => w.Placement == "process" && w is not WorkerStatus { Task: true }).Select(w => w.Name).ToList();
        if (options.Victims.Count > 0)
        {
            // Names were checked against the document before the start; a node on a thread has no process to kill.
            return [.. options.Victims.Where(processes.Contains)];
        }

        var sinks = status.Sinks.Keys.ToHashSet();
        return [.. processes.Where(p => !(options.Lossless && sinks.Contains(p)))];
    }

    /// <summary>The main loop: samples every second, restarts what failed by itself, and kills a worker every kill interval.</summary>
    private async Task Soak(RemoteManagerClient client, List<string> victims, SinkSpec? sink, CancellationToken cancellation)
    {
        try
        {
            await SoakLoop(client, victims, sink, cancellation).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
        {
            Say("interrupted: the soak ends early and still reports");
        }
    }

    private async Task SoakLoop(RemoteManagerClient client, List<string> victims, SinkSpec? sink, CancellationToken cancellation)
    {
        var next = options.KillInterval;
        var turn = 0;
        while (!cancellation.IsCancellationRequested && clock.Elapsed < options.Duration)
        {
            var status = await client.StatusAsync(cancellation).ConfigureAwait(false);
            Sample(status);
            if (status.State == "failed")
            {
                Unexpected(status, victim: null);
                await Restart(client, "after an unexpected failure", cancellation).ConfigureAwait(false);
            }

            if (clock.Elapsed >= next && victims.Count > 0)
            {
                var kill = await KillAndRestart(client, victims[turn++ % victims.Count], sink, cancellation).ConfigureAwait(false);
                kills.Add(kill);
                Say($"killed {kill.Worker} (pid {kill.Pid}): " +
                    (kill.Error ?? $"failure seen after {kill.DetectedMs:0} ms, restarted in {kill.RestartMs:0} ms (pid {kill.NewPid}), frames through it to the sink after {kill.ResumedMs:0} ms"));
                next += options.KillInterval;
                continue;
            }

            var wait = Min(TimeSpan.FromSeconds(1), next - clock.Elapsed, options.Duration - clock.Elapsed);
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, cancellation).ConfigureAwait(false);
            }
        }
    }

    private async Task<SoakKill> KillAndRestart(RemoteManagerClient client, string victim, SinkSpec? sink, CancellationToken cancellation)
    {
        var at = Math.Round(clock.Elapsed.TotalSeconds, 3);
        var before = await client.StatusAsync(cancellation).ConfigureAwait(false);
        Sample(before);
        if (Entry(before, victim) is not { Pid: { } pid, Alive: true })
        {
            return Failed(new SoakKill(at, victim, 0, null, null, null, null, $"'{victim}' was not running before its kill"));
        }

        ThisProcess.SendSignal(pid, 9);
        var watch = Stopwatch.StartNew();
        double? detected = null;
        while (watch.Elapsed < DetectTimeout)
        {
            var status = await client.StatusAsync(cancellation).ConfigureAwait(false);
            if (status.State == "failed")
            {
                detected = Math.Round(watch.Elapsed.TotalMilliseconds, 1);
                Unexpected(status, victim);
                break;
            }

            await Task.Delay(10, cancellation).ConfigureAwait(false);
        }

        if (detected is null)
        {
            return Failed(new SoakKill(at, victim, pid, null, null, null, null, $"the status did not show the pipeline failed within {DetectTimeout.TotalSeconds:0} s of the kill"));
        }

        watch.Restart();
        PipelineStatus snapshot;
        try
        {
            snapshot = await client.RestartAsync(cancellationToken: cancellation).ConfigureAwait(false);
        }
        catch (RemoteManagerException e)
        {
            return Failed(new SoakKill(at, victim, pid, null, detected, null, null, $"restart failed: {e.Message}"));
        }

        var restartMs = Math.Round(watch.Elapsed.TotalMilliseconds, 1);
        var after = Entry(snapshot, victim);
        var newPid = after?.Pid;
        if (snapshot.State != "running" || newPid is null || newPid == pid || after?.Alive != true)
        {
            return Failed(new SoakKill(at, victim, pid, newPid, detected, restartMs, null,
                $"after the restart the pipeline is {snapshot.State} and '{victim}' is pid {newPid?.ToString(CultureInfo.InvariantCulture) ?? "none"}, alive {after?.Alive}; failures: {string.Join("; ", snapshot.Failures.Select(f => $"{f.Kernel}: {f.Error}"))}"));
        }

        // Resumed: the new process makes progress, and then the sink consumes more (frames that went through it).
        double? resumed = null;
        long? baseline = null;
        watch.Restart();
        while (watch.Elapsed < ResumeTimeout)
        {
            var status = await client.StatusAsync(cancellation).ConfigureAwait(false);
            if (baseline is null && Frames(Entry(status, victim)) > 0)
            {
                baseline = sink is null ? 0 : Consumed(status, sink.Name);
            }

            if (baseline is { } b && (sink is null || Consumed(status, sink.Name) > b))
            {
                resumed = Math.Round(watch.Elapsed.TotalMilliseconds, 1);
                break;
            }

            await Task.Delay(10, cancellation).ConfigureAwait(false);
        }

        if (resumed is null)
        {
            var now = await client.StatusAsync(cancellation).ConfigureAwait(false);
            var what = baseline is null ? $"the new '{victim}' processed no frame" : $"the sink '{sink!.Name}' consumed nothing after it";
            return Failed(new SoakKill(at, victim, pid, newPid, detected, restartMs, null, $"{what} within {ResumeTimeout.TotalSeconds:0} s of the restart; {Describe(now)}"));
        }

        restartsDone++;
        return new SoakKill(at, victim, pid, newPid, detected, restartMs, resumed, null);
    }

    private SoakKill Failed(SoakKill kill)
    {
        restartsFailed++;
        Problem($"kill of '{kill.Worker}' at {kill.AtS:0.0} s: {kill.Error}");
        return kill;
    }

    /// <summary>Failures in <paramref name="status"/> of workers other than <paramref name="victim"/>: counted, described.</summary>
    private void Unexpected(PipelineStatus status, string? victim)
    {
        foreach (var failure in status.Failures)
        {
            if (failure.Kernel != victim)
            {
                unexpectedFailures++;
                Problem($"unexpected failure at {clock.Elapsed.TotalSeconds:0.0} s: {failure.ComponentType} '{failure.Kernel}': {failure.Error}");
            }
        }
    }

    private async Task Restart(RemoteManagerClient client, string why, CancellationToken cancellation)
    {
        try
        {
            await client.RestartAsync(cancellationToken: cancellation).ConfigureAwait(false);
        }
        catch (RemoteManagerException e)
        {
            restartsFailed++;
            Problem($"restart {why} failed: {e.Message}");
        }
    }

    /// <summary>Calls <c>GET /status</c> back to back until <paramref name="stop"/>: latencies, errors and the first error.</summary>
    private static async Task<(List<long> Latencies, long Errors, string? FirstError)> Hammer(RemoteManagerClient client, CancellationToken stop)
    {
        await Task.Yield();
        var latencies = new List<long>(1 << 16);
        long errors = 0;
        string? first = null;
        while (!stop.IsCancellationRequested)
        {
            var start = Stopwatch.GetTimestamp();
            try
            {
                await client.StatusAsync(stop).ConfigureAwait(false);
                latencies.Add((long)Stopwatch.GetElapsedTime(start).TotalNanoseconds);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                break;
            }
            catch (RemoteManagerException e)
            {
                errors++;
                first ??= e.Message;
            }
        }

        return (latencies, errors, first);
    }

    private SoakStatusLoad StatusLoad(List<(List<long> Latencies, long Errors, string? FirstError)> clients, double seconds)
    {
        var all = clients.SelectMany(c => c.Latencies).ToArray();
        var errors = clients.Sum(c => c.Errors);
        var first = clients.Select(c => c.FirstError).FirstOrDefault(e => e is not null);
        if (first is not null)
        {
            Problem($"GET /status failed {errors} times; first: {first}");
        }

        return new SoakStatusLoad(options.StatusClients, all.Length, errors, seconds > 0 ? Math.Round(all.Length / seconds, 1) : 0, LatencySummary.Of(all), first);
    }

    /// <summary>Memory of the server, this process and every worker; skips of the pipeline's lossless readers; the workers' torn counters.</summary>
    private void Sample(PipelineStatus status)
    {
        var now = clock.Elapsed.TotalSeconds;
        Track("server", serverPid, now);
        Track("soak", Environment.ProcessId, now);
        foreach (var (name, pid) in PipelineBenchmark.Pids(status))
        {
            if (!workers.ContainsKey(pid) && ProcessIdentity.Of(pid) is { } identity)
            {
                workers[pid] = identity;
            }

            Track(name, pid, now);
        }

        foreach (var w in status.Workers.Values.Cast<WorkerEntry>().Concat(status.Sinks.Values))
        {
            if (w is { HasFigures: true, Pid: { } pid })
            {
                // Discarded computes on lapped latest inputs, and lapped copies of auxiliary inputs.
                workerTorn[pid] = Math.Max(workerTorn.GetValueOrDefault(pid), w.TornFrames + w.AuxiliaryTornCopies);
            }
        }

        foreach (var stream in watched)
        {
            foreach (var reader in stream.GetStatistics().Readers)
            {
                if (reader.Delivery == Delivery.Lossless && reader.Pid != Environment.ProcessId && reader.FramesSkipped > 0)
                {
                    var key = (stream.Name, reader.Index, reader.Pid);
                    losslessSkips[key] = Math.Max(losslessSkips.GetValueOrDefault(key), reader.FramesSkipped);
                }
            }
        }
    }

    private void Track(string name, int pid, double now)
    {
        if (ThisProcess.TryReadUsage(pid, out _, out var rss))
        {
            if (!memory.TryGetValue(pid, out var track))
            {
                memory[pid] = track = new MemoryTrack(name, pid, now, rss, Math.Min(60, options.Duration.TotalSeconds / 4));
            }

            track.Add(now, rss);
        }
    }

    /// <summary>Kills the sources, waits until every stream is drained, and compares the sink's count with its stream's.</summary>
    private async Task<SoakSinkCount> Drain(RemoteManagerClient client, SinkSpec sink)
    {
        var status = await client.StatusAsync().ConfigureAwait(false);
        foreach (var source in status.Sources.Values)
        {
            if (source is { Pid: { } pid, Alive: true })
            {
                ThisProcess.SendSignal(pid, 9);
            }
        }

        var watch = Stopwatch.StartNew();
        while (true)
        {
            status = await client.StatusAsync().ConfigureAwait(false);
            var published = status.Streams.GetValueOrDefault(sink.Stream)?.FramesPublished ?? 0;
            var consumed = Consumed(status, sink.Name);
            var drained = status.Streams.Values.All(s => s.FillFrames == 0);
            if ((drained && consumed == published) || watch.Elapsed > DrainTimeout)
            {
                if (consumed != published)
                {
                    Problem($"the sink '{sink.Name}' consumed {consumed} frames of the {published} published on '{sink.Stream}'{(drained ? "" : $" (the pipeline did not drain within {DrainTimeout.TotalSeconds:0} s)")}");
                }

                return new SoakSinkCount(sink.Name, sink.Stream, published, consumed, published - consumed);
            }

            await Task.Delay(50).ConfigureAwait(false);
        }
    }

    /// <summary>POST /commands/shutdown, then SIGTERM, and the server's exit code (null if it did not exit).</summary>
    private async Task<int?> ShutDown(RemoteManagerClient client, LineProcess server)
    {
        try
        {
            await client.ShutdownAsync(force: true).ConfigureAwait(false);
        }
        catch (RemoteManagerException e)
        {
            Problem($"POST /commands/shutdown failed: {e.Message}");
        }

        ThisProcess.SendSignal(server.Pid, 15);
        if (!server.WaitForExit(ServerExitTimeout))
        {
            Problem($"the server (pid {server.Pid}) did not exit within {ServerExitTimeout.TotalSeconds:0} s of SIGTERM");
            return null;
        }

        if (server.ExitCode != 0)
        {
            unexpectedFailures++;
            Problem($"the server exited with code {server.ExitCode}: {server.ErrorOutput}");
        }

        return server.ExitCode;
    }

    /// <summary>Regions of the namespace, live processes of the pipeline or of this process, and discovery records.</summary>
    private List<string> Leftovers(LineProcess server, string runtimeDirectory)
    {
        var left = new List<string>();
        if (Directory.Exists(SharedMemoryNamespace.Root))
        {
            left.AddRange(Directory.EnumerateFileSystemEntries(SharedMemoryNamespace.Root)
                .Where(p => Path.GetFileName(p) is var n && (n == ns || n.StartsWith(ns + ".", StringComparison.Ordinal)))
                .Select(p => $"{p} (shared memory)"));
        }

        var pids = new SortedSet<int>(workers.Where(w => w.Value.IsAlive()).Select(w => w.Key));
        if (!server.HasExited)
        {
            pids.Add(server.Pid);
        }

        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && pid != Environment.ProcessId
                && StateAndParent(pid) is { State: not 'Z' } stat && (stat.Parent == Environment.ProcessId || Arguments(pid).Contains(ns)))
            {
                pids.Add(pid);
            }
        }

        left.AddRange(pids.Select(p => $"process {p}: {string.Join(' ', Arguments(p))}"));
        var records = Path.Combine(runtimeDirectory, "flowline", "servers");
        if (Directory.Exists(records))
        {
            left.AddRange(Directory.EnumerateFiles(records).Select(f => $"{f} (discovery record)"));
        }

        foreach (var item in left)
        {
            Problem($"left behind: {item}");
        }

        return left;
    }

    /// <summary>The state letter and parent pid of a process (fields 3 and 4 of /proc/PID/stat); null if it is gone.</summary>
    private static (char State, int Parent)? StateAndParent(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return (fields[0][0], int.Parse(fields[1], CultureInfo.InvariantCulture));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static string[] Arguments(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Split('\0', StringSplitOptions.RemoveEmptyEntries);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    /// <summary>The state, each worker's health and frames, and each stream's published frames and fill, in one line.</summary>
    private static string Describe(PipelineStatus status)
    {
        var nodes = status.AllWorkers().Select(w => $"{w.Name} pid {w.Pid} {w.Health} {w.Frames} frames");
        var streams = status.Streams.Select(p =>
            $"{p.Key} {p.Value.FramesPublished} published, fill {p.Value.FillFrames}/{p.Value.Capacity}, {p.Value.Readers} readers, writer {p.Value.WriterState} {p.Value.WriterPid}");
        return $"state {status.State}; {string.Join("; ", nodes)}; streams: {string.Join("; ", streams)}";
    }

    private static WorkerEntry? Entry(PipelineStatus status, string name) => status.AllWorkers().FirstOrDefault(w => w.Name == name);

    /// <summary>The frames a source wrote, a kernel processed or a sink consumed (its current process's).</summary>
    private static long Frames(WorkerEntry? entry) => entry?.Frames ?? 0;

    private static long Consumed(PipelineStatus status, string sink) => status.Sinks.GetValueOrDefault(sink)?.FramesConsumed ?? 0;

    private static TimeSpan Min(params TimeSpan[] spans) => spans.Min();

    /// <summary>A progress line, stamped with the seconds since the pipeline started.</summary>
    private void Say(string text) => progress.WriteLine($"{clock.Elapsed.TotalSeconds,6:0.0} s  {text}");

    private void Problem(string text)
    {
        if (problems.Count < MaxProblems)
        {
            problems.Add(text);
        }
    }

    /// <summary>Resident memory samples of one process.</summary>
    private sealed class MemoryTrack(string name, int pid, double first, long firstBytes, double warmupS)
    {
        private double lastAt;
        private long lastBytes;
        private long maxBytes;
        private long? warmBytes;

        public string Name => name;

        public int Pid => pid;

        public void Add(double at, long bytes)
        {
            lastAt = at;
            lastBytes = bytes;
            maxBytes = Math.Max(maxBytes, bytes);
            if (warmBytes is null && at - first >= warmupS)
            {
                warmBytes = bytes;
            }
        }

        public SoakProcessMemory Report() => new(
            name, pid, Math.Round(first, 1), Math.Round(lastAt, 1), firstBytes, lastBytes, maxBytes, lastBytes - firstBytes, warmBytes, lastBytes - warmBytes);
    }
}
