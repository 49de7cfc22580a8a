using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace Kafka.Reliable.Tests.Infrastructure;

/// <summary>
/// A meter factory of the test's own, given to the test's host (<see cref="Use"/>) in place of the host's: the library makes its
/// meter there, so <see cref="MetricCollector{T}"/>s made here before the host starts see every measurement of that host's
/// consumers, and none of the other tests running beside it.
/// </summary>
public sealed class TestMeters : IDisposable
{
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly List<IDisposable> _collectors = [];
    private readonly List<Action> _observe = [];

    public IMeterFactory Factory => _services.GetRequiredService<IMeterFactory>();

    /// <summary>Registers the factory in a host's services.</summary>
    public void Use(IServiceCollection services) => services.AddSingleton(Factory);

    /// <summary>Collects one of the library's instruments (on the meter <see cref="KafkaReliableDiagnostics.MeterName"/>).</summary>
    public MetricCollector<T> Collect<T>(string instrument)
        where T : struct
    {
        var collector = new MetricCollector<T>(Factory, KafkaReliableDiagnostics.MeterName, instrument);
        _collectors.Add(collector);
        _observe.Add(collector.RecordObservableInstruments);
        return collector;
    }

    /// <summary>Observes every observable instrument collected here now (counters and histograms are unaffected).</summary>
    public void Observe()
    {
        foreach (var observe in _observe)
        {
            observe();
        }
    }

    public void Dispose()
    {
        foreach (var collector in _collectors)
        {
            collector.Dispose();
        }

        _services.Dispose();
    }
}

/// <summary>Sums and latest values of what a <see cref="MetricCollector{T}"/> collected.</summary>
public static class CollectedMetrics
{
    public static double Sum<T>(this MetricCollector<T> collector)
        where T : struct => collector.GetMeasurementSnapshot().Sum(m => Convert.ToDouble(m.Value, System.Globalization.CultureInfo.InvariantCulture));

    public static int Count<T>(this MetricCollector<T> collector)
        where T : struct => collector.GetMeasurementSnapshot().Count;

    /// <summary>The largest value collected so far (0 if none).</summary>
    public static double Max<T>(this MetricCollector<T> collector)
        where T : struct => collector.GetMeasurementSnapshot().Select(m => Convert.ToDouble(m.Value, System.Globalization.CultureInfo.InvariantCulture)).DefaultIfEmpty().Max();

    /// <summary>Observes the instrument now (an observable one), and returns its latest value per partition.</summary>
    public static Dictionary<string, double> LatestPerPartition<T>(this MetricCollector<T> collector)
        where T : struct
    {
        collector.RecordObservableInstruments();
        var latest = new Dictionary<string, double>();
        foreach (var measurement in collector.GetMeasurementSnapshot())
        {
            latest[(string)measurement.Tags[KafkaReliableDiagnostics.PartitionTag]!] = Convert.ToDouble(measurement.Value, System.Globalization.CultureInfo.InvariantCulture);
        }

        return latest;
    }
}
