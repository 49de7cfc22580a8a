using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Kafka.Reliable.Tests.Infrastructure;

/// <summary>Listens to the library's meter and keeps what was measured for one consumer group (tests run side by side).</summary>
internal sealed class GroupMetrics : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly string _group;
    private readonly ConcurrentQueue<(string Instrument, double Value, Dictionary<string, object?> Tags)> _measurements = new();

    public GroupMetrics(string group)
    {
        _group = group;
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == KafkaReliableDiagnostics.MeterName)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Keep(instrument, value, tags));
        _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Keep(instrument, value, tags));
        _listener.Start();
    }

    public double Sum(string instrument) => _measurements.Where(m => m.Instrument == instrument).Sum(m => m.Value);

    public int Count(string instrument) => _measurements.Count(m => m.Instrument == instrument);

    /// <summary>Collects the observable instruments now, and returns the latest lag per partition.</summary>
    public Dictionary<string, double> Lag() => LatestPerPartition("kafka.reliable.consumer.lag");

    /// <summary>Collects the observable instruments now, and returns the latest value of a per-partition instrument per partition.</summary>
    public Dictionary<string, double> LatestPerPartition(string instrument)
    {
        _listener.RecordObservableInstruments();
        var latest = new Dictionary<string, double>();
        foreach (var measurement in _measurements.Where(m => m.Instrument == instrument))
        {
            latest[(string)measurement.Tags[KafkaReliableDiagnostics.PartitionTag]!] = measurement.Value;
        }

        return latest;
    }

    /// <summary>The largest value measured for an instrument so far (0 if none).</summary>
    public double Max(string instrument) => _measurements.Where(m => m.Instrument == instrument).Select(m => m.Value).DefaultIfEmpty().Max();

    public void Dispose() => _listener.Dispose();

    private void Keep(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var copy = new Dictionary<string, object?>();
        foreach (var tag in tags)
        {
            copy[tag.Key] = tag.Value;
        }

        if (copy.TryGetValue(KafkaReliableDiagnostics.ConsumerGroupTag, out var group) && (string?)group == _group)
        {
            _measurements.Enqueue((instrument.Name, value, copy));
        }
    }
}
