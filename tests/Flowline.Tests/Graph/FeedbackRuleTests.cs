using Flowline.Documents;
using Flowline.Kernels;
using Flowline.Plugins;

namespace Flowline.Tests.Graph;

/// <summary>shmpipeline's feedback rule: a source's feedback alias reads a stateful sink's output, and the path between them propagates frame ids.</summary>
public sealed class FeedbackRuleTests
{
    private static readonly KindRegistry Kinds = KindRegistry.BuiltIn.With([new LoopSource(), new LoopSink()], "test");

    private static string Document(string sourceAuxiliary = "{feedback: fb}", string propagate = "propagate_frame_id: true") => $$"""
        shared_memory:
          - {name: raw, shape: [4], dtype: float32}
          - {name: scaled, shape: [4], dtype: float32}
          - {name: fb, shape: [4], dtype: float32}
          - {name: other, shape: [4], dtype: float32}
        sources:
          - {name: camera, kind: test.loop_source, stream: raw, auxiliary: {{sourceAuxiliary}}}
        kernels:
          - name: scale
            kind: cpu.scale
            input: raw
            output: scaled
            parameters: {factor: 2}
            {{propagate}}
        sinks:
          - {name: mirror, kind: test.loop_sink, stream: scaled, outputs: [fb]}
        """;

    private static IReadOnlyList<SpecError> Errors(string yaml) => PipelineDocument.Check(yaml, "loop.yaml", kinds: Kinds).Errors;

    [Fact]
    public void FeedbackThroughAPropagatingKernel_IsValid() => Assert.Empty(Errors(Document()));

    [Fact]
    public void KernelOnTheFeedbackPath_WithoutPropagateFrameId_IsAnError()
    {
        var error = Assert.Single(Errors(Document(propagate: "")));
        Assert.Equal("kernels[0].propagate_frame_id", error.Path);
        Assert.Contains("set propagate_frame_id: true", error.Message, StringComparison.Ordinal);
        Assert.Contains("'camera'", error.Message, StringComparison.Ordinal);
        Assert.Contains("'mirror'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MissingFeedbackAlias_IsAnError()
    {
        var errors = Errors(Document(sourceAuxiliary: "{}"));
        Assert.Contains(errors, e => e.Path == "sources[0].auxiliary" && e.Message.Contains("needs the feedback alias 'feedback'", StringComparison.Ordinal));
    }

    [Fact]
    public void FeedbackAliasReadingAStreamNoSinkWrites_IsAnError()
    {
        var errors = Errors(Document(sourceAuxiliary: "{feedback: other}"));
        Assert.Contains(errors, e => e.Path == "sources[0].auxiliary.feedback" && e.Message.Contains("which no sink writes", StringComparison.Ordinal));
    }

    private sealed class LoopSource : SourceDefinition
    {
        public override string Kind => "test.loop_source";

        public override string Description => "a source fed back by a sink";

        public override Arity Auxiliary => Arity.Between(0, 1);

        public override IReadOnlyList<string> RequiredFeedbackAliases => ["feedback"];

        public override ISource Create(SourceContext context) => throw new NotSupportedException("validation only");
    }

    private sealed class LoopSink : SinkDefinition
    {
        public override string Kind => "test.loop_sink";

        public override string Description => "a stateful sink";

        public override Arity Outputs => Arity.Exactly(1);

        public override ISink Create(SinkContext context) => throw new NotSupportedException("validation only");
    }
}
