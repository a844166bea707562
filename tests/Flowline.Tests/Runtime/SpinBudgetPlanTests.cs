using Flowline.Documents;
using Flowline.Pipelines;
using Flowline.Runtime;
using Flowline.SharedMemory;

namespace Flowline.Tests.Runtime;

/// <summary>How a plan gives predictive readers their wait policy and spin budget: stream, pipeline, default, shared by the workers.</summary>
public sealed class SpinBudgetPlanTests
{
    private static PipelinePlan Plan(string yaml) => new(PipelineDocument.Check(yaml).Pipeline ?? throw new InvalidOperationException("invalid test document"));

    private static string Document(string top, string streamA) => $"""
        {top}
        shared_memory:
          - name: a
            shape: [64]
            dtype: float32
            {streamA}
          - name: b
            shape: [64]
            dtype: float32
        kernels:
          - name: copy
            kind: cpu.copy
            input: a
            output: b
        """;

    [Fact]
    public void PredictiveReader_TakesTheStreamsBudget_ThenThePipelines_ThenTheDefault_SharedByTheWorkers()
    {
        // One worker here: with at least one core per worker the budget is as given.
        var share = WaitTuning.SharedSpinBudget(1.0, 1, Environment.ProcessorCount);

        var plan = Plan(Document("spin_budget: 0.2", "wait: predictive\n    spin_budget: 0.1"));
        var copy = plan.Pipeline.Spec.Kernels[0];
        var reader = plan.TriggerReader(copy, "a");
        Assert.Equal(WaitPolicy.Predictive, reader.WaitPolicy);
        Assert.Equal(0.1 * share, reader.SpinBudget, 9);

        plan = Plan(Document("spin_budget: 0.2", "wait: predictive"));
        Assert.Equal(0.2 * share, plan.TriggerReader(plan.Pipeline.Spec.Kernels[0], "a").SpinBudget, 9);

        plan = Plan(Document("", "wait: predictive"));
        Assert.Equal(WaitTuning.DefaultSpinBudget * share, plan.TriggerReader(plan.Pipeline.Spec.Kernels[0], "a").SpinBudget, 9);
    }

    [Fact]
    public void MoreWorkersThanCores_ShrinkTheBudgetInProportion()
    {
        var kernels = string.Join("\n", Enumerable.Range(0, 8).Select(i => $"""
              - name: copy{i}
                kind: cpu.copy
                input: a
                output: o{i}
            """));
        var streams = string.Join("\n", Enumerable.Range(0, 8).Select(i => $"""
              - name: o{i}
                shape: [4]
                dtype: float32
            """));
        var yaml = $"""
            spin_budget: 0.4
            shared_memory:
              - name: a
                shape: [4]
                dtype: float32
                wait: predictive
            {streams}
            kernels:
            {kernels}
            """;
        var plan = Plan(yaml);
        Assert.Equal(8, plan.Workers.Count);
        var expected = 0.4 * Math.Min(1.0, (double)Environment.ProcessorCount / 8);
        Assert.Equal(expected, plan.TriggerReader(plan.Pipeline.Spec.Kernels[0], "a").SpinBudget, 9);
    }

    [Fact]
    public void WorkerProcess_GetsTheBudgetItsManagerResolved_ThoughItSeesItsNodeAlone()
    {
        var outputs = string.Concat(Enumerable.Range(0, 8).Select(i => $"  - {{name: o{i}, shape: [4], dtype: float32}}\n"));
        var kernels = string.Concat(Enumerable.Range(0, 8).Select(i => $"  - {{name: copy{i}, kind: cpu.copy, input: a, output: o{i}}}\n"));
        var yaml = "spin_budget: 0.4\nshared_memory:\n  - {name: a, shape: [4], dtype: float32, wait: predictive}\n" + outputs + "kernels:\n" + kernels;
        var plan = Plan(yaml);
        var worker = plan.Workers[3];
        var manifest = WorkerManifest.Parse(WorkerManifest.For(plan, worker).ToJson());
        var alone = PipelineDocument.BindNode(manifest.Document, manifest.BaseDirectory, plan.Pipeline.Kinds, [], []);
        var workerPlan = new PipelinePlan(alone, PlacementPolicy.None, manifest.Namespace);

        var expected = plan.TriggerReader(worker.Node, "a").SpinBudget;
        Assert.Equal(expected, workerPlan.TriggerReader(workerPlan.Workers.Single().Node, "a").SpinBudget, 9);
        Assert.Equal(WaitPolicy.Predictive, workerPlan.TriggerReader(workerPlan.Workers.Single().Node, "a").WaitPolicy);
    }

    [Fact]
    public void CodeFirstPipeline_SetsWaitAndBudgetPerStream_AndChecksThem()
    {
        using var pipe = new Pipeline("spin-budget-test", new PipelineOptions { Wait = WaitPolicy.Hybrid, SpinBudget = 0.05 });
        pipe.AddStream<float>("x", [4]);
        pipe.SetWait("x", WaitPolicy.Predictive, 0.2);

        Assert.Throws<ArgumentException>(() => pipe.SetWait("nope", WaitPolicy.Predictive));
        var e = Assert.Throws<ArgumentException>(() => pipe.SetWait("x", WaitPolicy.Predictive, 0));
        Assert.Contains("above 0 and at most 1", e.Message);
        Assert.Throws<ArgumentException>(() => new Pipeline("bad-budget", new PipelineOptions { SpinBudget = 3 }));
    }
}
