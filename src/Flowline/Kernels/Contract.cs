using System.Runtime.InteropServices;
using Flowline.SharedMemory;

namespace Flowline.Kernels;

/// <summary>How many streams a kind takes in one role (trigger inputs, auxiliary inputs, outputs).</summary>
/// <param name="Min">The fewest.</param>
/// <param name="Max">The most (<see cref="int.MaxValue"/> for no limit).</param>
public readonly record struct Arity(int Min, int Max)
{
    /// <summary>No stream.</summary>
    public static Arity None => new(0, 0);

    /// <summary>Exactly <paramref name="count"/> streams.</summary>
    public static Arity Exactly(int count) => new(count, count);

    /// <summary>At least <paramref name="count"/> streams.</summary>
    public static Arity AtLeast(int count) => new(count, int.MaxValue);

    /// <summary>From <paramref name="min"/> to <paramref name="max"/> streams.</summary>
    public static Arity Between(int min, int max) => new(min, max);

    /// <summary>True if <paramref name="count"/> streams are allowed.</summary>
    public bool Allows(int count) => count >= Min && count <= Max;

    /// <summary>"exactly 1", "at least 2", "0 to 2", "none".</summary>
    public override string ToString() =>
        Max == 0 ? "none" : Min == Max ? $"exactly {Min}" : Max == int.MaxValue ? $"at least {Min}" : $"{Min} to {Max}";
}

/// <summary>A parameter a kind accepts, for validation messages and <c>flowline kinds</c>.</summary>
/// <param name="Name">The parameter's name.</param>
/// <param name="Type">What it holds: number, integer, string, boolean, or a list of choices.</param>
/// <param name="Required">True if it must be given.</param>
/// <param name="Default">Its default, as text, when not required.</param>
/// <param name="Description">One line on what it does.</param>
public sealed record ParameterInfo(string Name, string Type, bool Required, string? Default, string Description)
{
    /// <summary>The smallest value allowed (a number), or null.</summary>
    public double? Minimum { get; init; }

    /// <summary>The largest value allowed (a number), or null.</summary>
    public double? Maximum { get; init; }

    /// <summary>The values allowed, or null (a list in <see cref="Type"/> such as <c>"a|b"</c> is read as choices too).</summary>
    public IReadOnlyList<string>? Choices { get; init; }

    /// <summary>The unit, or null.</summary>
    public string? Unit { get; init; }

    /// <summary>
    /// True if a running node applies a change between two frames (its runnable object implements
    /// <see cref="Runtime.ILiveSettings"/>); false if a change needs a restart.
    /// </summary>
    public bool Live { get; init; }
}

/// <summary>
/// The frames a kernel works on in one computation: trigger inputs, auxiliary inputs (in binding order)
/// and outputs, typed by the caller. The runtime points them at stream slots before each call (zero-copy);
/// tests point them at arrays. Nothing here allocates per frame.
/// </summary>
public sealed class KernelIo
{
    private readonly ReadOnlyMemory<byte>[] inputs;
    private readonly ReadOnlyMemory<byte>[] auxiliary;
    private readonly Memory<byte>[] outputs;
    private readonly FrameHeader[] inputHeaders;
    private Func<bool>? checkInputs;

    /// <summary>Creates frames for a kernel with these numbers of streams.</summary>
    public KernelIo(int inputs, int auxiliary, int outputs)
    {
        this.inputs = new ReadOnlyMemory<byte>[inputs];
        this.auxiliary = new ReadOnlyMemory<byte>[auxiliary];
        this.outputs = new Memory<byte>[outputs];
        inputHeaders = new FrameHeader[inputs];
    }

    /// <summary>Trigger inputs.</summary>
    public int InputCount => inputs.Length;

    /// <summary>Auxiliary inputs.</summary>
    public int AuxiliaryCount => auxiliary.Length;

    /// <summary>Outputs.</summary>
    public int OutputCount => outputs.Length;

    /// <summary>Trigger input <paramref name="index"/> as elements of <typeparamref name="T"/>.</summary>
    public ReadOnlySpan<T> Input<T>(int index = 0)
        where T : unmanaged => MemoryMarshal.Cast<byte, T>(inputs[index].Span);

    /// <summary>Auxiliary input <paramref name="index"/> (binding order) as elements of <typeparamref name="T"/>.</summary>
    public ReadOnlySpan<T> Auxiliary<T>(int index)
        where T : unmanaged => MemoryMarshal.Cast<byte, T>(auxiliary[index].Span);

    /// <summary>Output <paramref name="index"/> as elements of <typeparamref name="T"/>: write the result here.</summary>
    public Span<T> Output<T>(int index = 0)
        where T : unmanaged => MemoryMarshal.Cast<byte, T>(outputs[index].Span);

    /// <summary>The header of trigger input <paramref name="index"/>'s frame.</summary>
    public FrameHeader InputHeader(int index = 0) => inputHeaders[index];

    /// <summary>Points trigger input <paramref name="index"/> at a frame.</summary>
    public void SetInput(int index, ReadOnlyMemory<byte> frame, FrameHeader header = default)
    {
        inputs[index] = frame;
        inputHeaders[index] = header;
    }

    /// <summary>Points auxiliary input <paramref name="index"/> at a frame.</summary>
    public void SetAuxiliary(int index, ReadOnlyMemory<byte> frame) => auxiliary[index] = frame;

    /// <summary>Points output <paramref name="index"/> at the slot to fill.</summary>
    public void SetOutput(int index, Memory<byte> frame) => outputs[index] = frame;

    /// <summary>
    /// Whether the trigger inputs were intact when the kernel said it was done with them
    /// (<see cref="InputsConsumed"/>); null if it did not say so in this computation.
    /// </summary>
    public bool? InputsIntactWhenConsumed { get; private set; }

    /// <summary>
    /// Tells the worker that this computation will read its trigger inputs no more (it copied what it
    /// needs). A long computation calls it once it has: the worker checks the input frames were intact
    /// at this point, so a writer that laps the ring during the rest of the computation does not make the
    /// frame count as torn. Outside a worker it does nothing.
    /// </summary>
    public void InputsConsumed()
    {
        if (checkInputs is not null && InputsIntactWhenConsumed is null)
        {
            InputsIntactWhenConsumed = checkInputs();
        }
    }

    /// <summary>True if this computation called <see cref="HoldOutputs"/>: the worker publishes nothing for it.</summary>
    public bool OutputsHeld { get; private set; }

    /// <summary>
    /// Tells the worker to publish no output for this computation (the input frame is taken and held
    /// back, as a closed <c>flowline.gate</c> does); it counts as neither processed nor torn.
    /// </summary>
    public void HoldOutputs() => OutputsHeld = true;

    /// <summary>The worker's side of <see cref="InputsConsumed"/>: the check to run, set before each computation.</summary>
    internal void ExpectInputsConsumed(Func<bool> check)
    {
        checkInputs = check;
        InputsIntactWhenConsumed = null;
        OutputsHeld = false;
    }
}

/// <summary>
/// A kernel ready to run: computed once per frame by the worker loop, which owns waiting, reading and
/// publishing. Implementations write straight into the output frames, keep their state in fields, and
/// allocate nothing in <see cref="Compute"/>.
/// </summary>
public interface IKernel
{
    /// <summary>Computes the outputs of one frame.</summary>
    void Compute(KernelIo io);
}

/// <summary>A kernel that holds resources; the worker disposes it when it stops.</summary>
public interface IDisposableKernel : IKernel, IDisposable;
