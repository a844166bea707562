using System.Diagnostics;
using System.Diagnostics.Metrics;
using Flowline.Runtime;

namespace Flowline.Tests.Runtime;

/// <summary>A manager publishes its figures as instruments of the Flowline meter, and its lifecycle as activities.</summary>
public sealed class PipelineMetricsInstrumentTests : RuntimeTest
{
    [Fact]
    public void Instruments_Running_FramesCounterMoves_InSecondsAndRatios()
    {
        var manager = Manager(PipelineManagerTests.CopyPipeline);
        var measurements = new List<(string Instrument, string? Unit, double Value, Dictionary<string, object?> Tags)>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                // Only this manager's meter: other tests' managers publish meters of the same name.
                if (instrument.Meter.Name == PipelineMetrics.MeterName)
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var map = new Dictionary<string, object?>(StringComparer.Ordinal);
            foreach (var tag in tags)
            {
                map[tag.Key] = tag.Value;
            }

            if ((string?)map.GetValueOrDefault("namespace") == manager.Namespace)
            {
                measurements.Add((instrument.Name, instrument.Unit, value, map));
            }
        }

        listener.SetMeasurementEventCallback<long>((i, v, t, _) => Record(i, v, t));
        listener.SetMeasurementEventCallback<double>((i, v, t, _) => Record(i, v, t));
        listener.SetMeasurementEventCallback<int>((i, v, t, _) => Record(i, v, t));
        var activities = new List<Activity>();
        using var activityListener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == PipelineMetrics.MeterName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a =>
            {
                lock (activities)
                {
                    activities.Add(a);
                }
            },
        };
        ActivitySource.AddActivityListener(activityListener);
        listener.Start();

        manager.Build();
        manager.Start();
        WaitUntil(() => Frames(manager, "copy") > 50, "frames flow");
        double CopyFrames()
        {
            measurements.Clear();
            listener.RecordObservableInstruments();
            return measurements.Single(m => m.Instrument == "flowline.worker.frames" && (string?)m.Tags["worker"] == "copy").Value;
        }

        var first = CopyFrames();
        Assert.True(first > 0);
        var running = measurements.Single(m => m.Instrument == "flowline.pipeline.state" && (string?)m.Tags["state"] == "running");
        Assert.Equal(1, running.Value);
        var exec = measurements.Single(m => m.Instrument == "flowline.worker.exec.duration.mean" && (string?)m.Tags["worker"] == "copy");
        Assert.Equal("s", exec.Unit);
        Assert.InRange(exec.Value, 1e-9, 1.0);
        Assert.All(measurements.Where(m => m.Instrument == "flowline.stream.fill_ratio"), m => Assert.InRange(m.Value, 0, 1));
        Assert.Equal("kernel", (string?)exec.Tags["role"]);
        WaitUntil(() => CopyFrames() > first, "the frames counter increases");

        lock (activities)
        {
            Assert.Contains(activities, a => a.OperationName == "flowline.pipeline.start" && (string?)a.GetTagItem("flowline.namespace") == manager.Namespace);
            Assert.Contains(activities, a => a.OperationName == "flowline.pipeline.build" && (string?)a.GetTagItem("flowline.namespace") == manager.Namespace);
        }
    }
}
