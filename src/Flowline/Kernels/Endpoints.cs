using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Flowline.SharedMemory;

namespace Flowline.Kernels;

/// <summary>
/// A source ready to run: the worker calls <see cref="Produce"/> for every generation (paced at
/// <see cref="RateHz"/> when it has one), and publishes what it wrote. Implement
/// <see cref="IDisposable"/> to release hardware when the worker stops.
/// </summary>
public interface ISource
{
    /// <summary>The rate the worker paces generations at, without catch-up bursts; null for as fast as <see cref="Produce"/> returns.</summary>
    double? RateHz => null;

    /// <summary>
    /// Produces one generation: writes frames through <see cref="EndpointIo.Output{T}"/> (outputs left
    /// untouched are not published) and returns true, or returns false when nothing is ready yet (the
    /// worker waits its <c>poll_interval</c> and calls again). May block, watching <see cref="EndpointIo.Stopping"/>.
    /// </summary>
    bool Produce(SourceIo io);

    /// <summary>Figures of the source's own (shmpipeline's <c>plugin_metrics</c>), read a few times a second; null for none.</summary>
    JsonObject? Metrics() => null;
}

/// <summary>
/// A sink ready to run: the worker calls <see cref="Consume"/> for every frame of its stream. A
/// stateful sink writes feedback through <see cref="EndpointIo.Output{T}"/>, published with the input's
/// frame id. Implement <see cref="IDisposable"/> to release resources when the worker stops.
/// </summary>
public interface ISink
{
    /// <summary>Consumes one frame.</summary>
    void Consume(SinkIo io);

    /// <summary>Figures of the sink's own (shmpipeline's <c>plugin_metrics</c>), read a few times a second; null for none.</summary>
    JsonObject? Metrics() => null;
}

/// <summary>What an endpoint (a source or a sink) works with: lazily looked output slots, auxiliary inputs and the stop signal.</summary>
public abstract class EndpointIo
{
    private readonly Memory<byte>[] outputs;
    private readonly bool[] looked;
    private readonly Func<int, Memory<byte>>? look;
    private readonly ReadOnlyMemory<byte>[] auxiliary;

    private protected EndpointIo(int outputs, int auxiliary, Func<int, Memory<byte>>? look, CancellationToken stopping)
    {
        this.outputs = new Memory<byte>[outputs];
        looked = new bool[outputs];
        this.look = look;
        this.auxiliary = new ReadOnlyMemory<byte>[auxiliary];
        Stopping = stopping;
    }

    private protected EndpointIo(Memory<byte>[] outputs, int auxiliary)
        : this(outputs.Length, auxiliary, null, CancellationToken.None)
    {
        outputs.CopyTo(this.outputs, 0);
    }

    /// <summary>Outputs.</summary>
    public int OutputCount => outputs.Length;

    /// <summary>Auxiliary inputs.</summary>
    public int AuxiliaryCount => auxiliary.Length;

    /// <summary>Fires when the worker is asked to stop; a blocking call should give up then.</summary>
    public CancellationToken Stopping { get; }

    /// <summary>
    /// Output <paramref name="index"/>'s slot as elements of <typeparamref name="T"/>: write the frame here.
    /// The first call in a generation takes the slot (waiting while a lossless reader lags); only outputs
    /// taken are published.
    /// </summary>
    public Span<T> Output<T>(int index = 0)
        where T : unmanaged
    {
        if (!looked[index])
        {
            if (look is not null)
            {
                outputs[index] = look(index);
            }

            looked[index] = true;
        }

        return MemoryMarshal.Cast<byte, T>(outputs[index].Span);
    }

    /// <summary>Auxiliary input <paramref name="index"/> (binding order): the newest frame of its stream, zeros before the first.</summary>
    public ReadOnlySpan<T> Auxiliary<T>(int index)
        where T : unmanaged => MemoryMarshal.Cast<byte, T>(auxiliary[index].Span);

    /// <summary>Waits <paramref name="delay"/> unless the worker is asked to stop first; true if it was (shmpipeline's <c>wait</c>).</summary>
    public bool Wait(TimeSpan delay) => Stopping.WaitHandle.WaitOne(delay);

    /// <summary>True if output <paramref name="index"/> was taken in this generation.</summary>
    public bool WasWritten(int index) => looked[index];

    internal void SetAuxiliary(int index, ReadOnlyMemory<byte> frame) => auxiliary[index] = frame;

    internal void BeginGeneration() => Array.Clear(looked);
}

/// <summary>What a source writes in one generation.</summary>
public sealed class SourceIo : EndpointIo
{
    /// <summary>Creates the frames of a source writing into <paramref name="outputs"/> (for tests: the runtime points them at stream slots).</summary>
    public SourceIo(params Memory<byte>[] outputs)
        : base(outputs ?? throw new ArgumentNullException(nameof(outputs)), 0)
    {
    }

    internal SourceIo(int outputs, int auxiliary, Func<int, Memory<byte>> look, CancellationToken stopping)
        : base(outputs, auxiliary, look, stopping)
    {
    }

    /// <summary>The generation being produced (0, 1, 2, ...): the frame id unless <see cref="FrameId"/> is set.</summary>
    public long Generation { get; internal set; }

    /// <summary>The frame id to stamp this generation with; null stamps <see cref="Generation"/>.</summary>
    public ulong? FrameId { get; set; }

    /// <summary>True to stamp each stream with its own sequence instead of one frame id for the whole generation (kept across generations).</summary>
    public bool PerStreamFrameIds { get; set; }

    /// <summary>When the data of this generation was acquired (<see cref="MonotonicClock"/>, ns); 0 stamps the time of publication.</summary>
    public long OriginTimestampNs { get; set; }

    internal void Begin(long generation)
    {
        BeginGeneration();
        Generation = generation;
        FrameId = null;
        OriginTimestampNs = 0;
    }
}

/// <summary>What a sink consumes: one frame, plus feedback outputs for a stateful sink.</summary>
public sealed class SinkIo : EndpointIo
{
    private ReadOnlyMemory<byte> input;

    /// <summary>Creates the frames of a sink reading <paramref name="input"/> and writing <paramref name="outputs"/> (for tests).</summary>
    public SinkIo(ReadOnlyMemory<byte> input, FrameHeader header = default, params Memory<byte>[] outputs)
        : base(outputs ?? throw new ArgumentNullException(nameof(outputs)), 0)
    {
        this.input = input;
        InputHeader = header;
    }

    internal SinkIo(int outputs, int auxiliary, Func<int, Memory<byte>> look, CancellationToken stopping)
        : base(outputs, auxiliary, look, stopping)
    {
    }

    /// <summary>The frame's header (sequence, frame id, publication and origin times).</summary>
    public FrameHeader InputHeader { get; private set; }

    /// <summary>The frame as elements of <typeparamref name="T"/>.</summary>
    public ReadOnlySpan<T> Input<T>()
        where T : unmanaged => MemoryMarshal.Cast<byte, T>(input.Span);

    internal void Begin(ReadOnlyMemory<byte> frame, FrameHeader header)
    {
        BeginGeneration();
        input = frame;
        InputHeader = header;
    }
}
