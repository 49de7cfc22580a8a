using System.Text;
using BenchmarkDotNet.Attributes;
using Confluent.Kafka;
using Kafka.Reliable.Idempotency;

namespace Kafka.Reliable.Benchmarks;

/// <summary>
/// The idempotency gate's round trip for one record with the in-memory store: the key (topic-partition-offset, or the
/// message-id header), the take under a lease, and the completion when the handler returns. Every record is a first
/// delivery (a new key), as on the steady path. Alone, and with several partition workers sharing one gate and store.
/// </summary>
[MemoryDiagnoser]
public class IdempotencyBenchmarks
{
    private const int Records = 4096;
    private const int Workers = 4;
    private readonly Worker[] _workers = new Worker[Workers];
    private InMemoryIdempotencyStore _store = null!;

    [GlobalSetup]
    public void Setup()
    {
        // Keys come back after Records round trips of a worker (header keys, store keys): the stores keep fewer completed
        // keys than that, so that every take is a first delivery.
        var gate = new IdempotencyGate(new InMemoryIdempotencyStore(maxEntries: Records / 4), transactional: false, "group", new IdempotencyOptions());
        _store = new InMemoryIdempotencyStore(maxEntries: Records / 4);
        for (var i = 0; i < Workers; i++)
        {
            _workers[i] = new Worker(gate, i);
        }
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Records, Description = "gate take + complete, topic-partition-offset key, 1 thread")]
    public async Task OffsetKeySingleThread()
    {
        var worker = _workers[0];
        for (var i = 0; i < Records; i++)
        {
            await worker.RoundTripAsync(withHeader: false).ConfigureAwait(false);
        }
    }

    [Benchmark(OperationsPerInvoke = Records, Description = "gate take + complete, message-id header key, 1 thread")]
    public async Task HeaderKeySingleThread()
    {
        var worker = _workers[0];
        for (var i = 0; i < Records; i++)
        {
            await worker.RoundTripAsync(withHeader: true).ConfigureAwait(false);
        }
    }

    [Benchmark(OperationsPerInvoke = Records, Description = "gate take + complete, topic-partition-offset key, 4 threads sharing gate and store")]
    public Task OffsetKeyContended() => ContendedAsync(withHeader: false);

    /// <summary>The store alone, 4 threads on distinct keys: what the store's locking costs under contention.</summary>
    [Benchmark(OperationsPerInvoke = Records, Description = "store TryBegin + Complete alone, 4 threads")]
    public Task StoreOnlyContended()
    {
        var tasks = new Task[Workers];
        for (var w = 0; w < Workers; w++)
        {
            var worker = _workers[w];
            tasks[w] = Task.Factory.StartNew(() => worker.StoreRoundTrips(_store, Records / Workers), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }

        return Task.WhenAll(tasks);
    }

    private Task ContendedAsync(bool withHeader)
    {
        var tasks = new Task[Workers];
        for (var w = 0; w < Workers; w++)
        {
            var worker = _workers[w];
            tasks[w] = Task.Factory.StartNew(() => worker.RoundTrips(Records / Workers, withHeader), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }

        return Task.WhenAll(tasks);
    }

    /// <summary>One partition worker: its own context and record, a new offset each round trip.</summary>
    private sealed class Worker
    {
        private readonly IdempotencyGate _gate;
        private readonly MessageContext _context = new("bench", "group") { Assignment = 1 };
        private readonly ConsumeResult<byte[]?, byte[]?> _plain;
        private readonly ConsumeResult<byte[]?, byte[]?>[] _withHeader = new ConsumeResult<byte[]?, byte[]?>[Records];
        private readonly string[] _storeKeys = new string[Records];
        private readonly string _storeOwner;
        private long _offset;

        public Worker(IdempotencyGate gate, int partition)
        {
            _gate = gate;
            _plain = Record(partition, []);
            for (var i = 0; i < Records; i++)
            {
                _withHeader[i] = Record(partition, new Headers { { "message-id", Encoding.UTF8.GetBytes($"0b5e8f0a-3c1d-4e7b-{partition:D4}-{i:D12}") } });
                _storeKeys[i] = $"group/orders-{partition}-{i}";
            }

            _storeOwner = $"owner-{partition}";
        }

        public void RoundTrips(int count, bool withHeader)
        {
            for (var i = 0; i < count; i++)
            {
                var pending = RoundTripAsync(withHeader);
                if (!pending.IsCompletedSuccessfully)
                {
                    pending.AsTask().GetAwaiter().GetResult();
                }
            }
        }

        public async ValueTask RoundTripAsync(bool withHeader)
        {
            var record = withHeader ? _withHeader[_offset % Records] : _plain;
            record.Offset = new Offset(_offset++);
            _context.Initialize(record);
            var key = _gate.KeyFor(null, _context);
            var (decision, _, held) = await _gate.BeginAsync(key, _context, CancellationToken.None).ConfigureAwait(false);
            if (decision != GateDecision.Handle)
            {
                throw new InvalidOperationException($"The key was not taken: {decision}.");
            }

            await _gate.CompleteAfterHandlerAsync(held!).ConfigureAwait(false);
            _context.Reset();
        }

        public void StoreRoundTrips(InMemoryIdempotencyStore store, int count)
        {
            for (var i = 0; i < count; i++)
            {
                var key = _storeKeys[_offset++ % Records];
                if (Wait(store.TryBeginAsync(key, _storeOwner, TimeSpan.FromMinutes(5), CancellationToken.None)).Status != IdempotencyStatus.Acquired
                    || Wait(store.CompleteAsync(key, _storeOwner, CancellationToken.None)) != IdempotencyLeaseStatus.Held)
                {
                    throw new InvalidOperationException("The key was not taken and completed.");
                }
            }
        }

        private static T Wait<T>(ValueTask<T> pending) => pending.IsCompletedSuccessfully ? pending.Result : pending.AsTask().GetAwaiter().GetResult();

        private static ConsumeResult<byte[]?, byte[]?> Record(int partition, Headers headers) => new()
        {
            Topic = "orders",
            Partition = new Partition(partition),
            Offset = new Offset(0),
            Message = new Message<byte[]?, byte[]?> { Key = null, Value = [1, 2, 3], Headers = headers, Timestamp = new Timestamp(1_700_000_000_000, TimestampType.CreateTime) },
        };
    }
}
