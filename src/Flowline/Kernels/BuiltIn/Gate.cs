using System.Text.Json.Nodes;
using Flowline.Runtime;

namespace Flowline.Kernels.BuiltIn;

/// <summary>
/// <c>flowline.gate</c>: out = input once the gate is open; while it is closed every frame is held back
/// (taken from the input, nothing published), so everything downstream waits. <c>open</c> is a live
/// setting: whoever runs the pipeline opens the gate by changing it (<c>PATCH /settings/{node}</c> of
/// <c>flowline serve</c>, or a host agent once the coordinator's interaction is answered: decision 115).
/// Its worker answers <c>gate_status</c> (<c>open</c>, <c>held</c>, <c>passed</c>) at any time.
/// </summary>
internal sealed class GateDefinition : KernelDefinition
{
    /// <summary>The kind's name.</summary>
    public const string KindName = "flowline.gate";

    public override string Kind => KindName;

    public override string Description => "out = input once the gate is open; frames are held back (not published) while it is closed";

    public override IReadOnlyList<ParameterInfo> Parameters { get; } =
    [
        new("open", "boolean", false, "false", "whether frames pass; opened by whoever runs the pipeline (a host agent once its interaction is approved)") { Live = true },
        new("question", "string", false, null, "what a person is asked before the gate opens (a host agent asks it as an interaction)"),
    ];

    public override void Validate(KernelContext context)
    {
        context.RequireSameFormat(context.Outputs[0], context.Inputs[0], context.OutputField(), "output");
        context.Boolean("open", false);
        context.Text("question");
    }

    public override IKernel Create(KernelContext context) => new Kernel(context.Boolean("open", false) == true);

    /// <remarks><c>open</c> is applied between two frames; <c>gate_status</c> is read from the request thread.</remarks>
    private sealed class Kernel(bool open) : IKernel, ILiveSettings, IRequestHandlerSource
    {
        private volatile bool isOpen = open;
        private long held;
        private long passed;

        public void Compute(KernelIo io)
        {
            if (!isOpen)
            {
                io.HoldOutputs();
                Interlocked.Increment(ref held);
                return;
            }

            io.Input<byte>().CopyTo(io.Output<byte>());
            Interlocked.Increment(ref passed);
        }

        public void ApplySettings(JsonObject values)
        {
            if (values["open"] is { } node)
            {
                isOpen = node.GetValue<bool>();
            }
        }

        public void AddHandlers(RequestHandlers handlers) => handlers.Add("gate_status", _ => new JsonObject
        {
            ["open"] = isOpen,
            ["held"] = Interlocked.Read(ref held),
            ["passed"] = Interlocked.Read(ref passed),
        });
    }
}
