using System.Reflection;
using Confluent.Kafka;

namespace Kafka.Reliable.Tests.Offsets;

/// <summary>
/// A transactional producer is disposed only once no transaction uses it: a handler that ignored its cancellation may still
/// be committing on the producer of a partition that was released, and a Confluent client disposed under a native call is
/// freed under that call (the torture harness crashed with a segmentation fault that way).
/// </summary>
public sealed class LeasedProducerTests
{
    [Fact]
    public void RetiredWhileATransactionUsesIt_IsDisposedWhenTheTransactionReturnsIt_AndTakesNoNewOne()
    {
        var producer = DisposalCounter.Create(out var counter);
        var lease = new LeasedProducer(producer);

        Assert.True(lease.TryAcquire());
        lease.Retire();
        Assert.Equal(0, counter.Disposals);
        Assert.False(lease.TryAcquire(), "a retired producer takes no new transaction");

        lease.Return();
        Assert.Equal(1, counter.Disposals);
    }

    [Fact]
    public void RetiredUnused_IsDisposedAtOnce_AndOnlyOnce()
    {
        var producer = DisposalCounter.Create(out var counter);
        var lease = new LeasedProducer(producer);
        Assert.True(lease.TryAcquire());
        lease.Return();
        Assert.Equal(0, counter.Disposals);

        lease.Retire();
        lease.Retire();
        Assert.Equal(1, counter.Disposals);
    }

    /// <summary>Transactions on several threads while the producer is retired: never disposed while one holds it, disposed exactly once.</summary>
    [Fact]
    public async Task RetiredUnderConcurrentTransactions_IsNeverDisposedWhileHeld()
    {
        for (var iteration = 0; iteration < 200; iteration++)
        {
            var producer = DisposalCounter.Create(out var counter);
            var lease = new LeasedProducer(producer);
            var held = 0;
            var violations = 0;
            counter.OnDispose = () =>
            {
                if (Volatile.Read(ref held) != 0)
                {
                    Interlocked.Increment(ref violations);
                }
            };
            using var start = new Barrier(5);
            var users = Enumerable.Range(0, 4).Select(_ => Task.Run(() =>
            {
                start.SignalAndWait();
                for (var i = 0; i < 50; i++)
                {
                    if (!lease.TryAcquire())
                    {
                        return;
                    }

                    Interlocked.Increment(ref held);
                    Thread.SpinWait(20);
                    Interlocked.Decrement(ref held);
                    lease.Return();
                }
            })).ToList();
            var retire = Task.Run(() =>
            {
                start.SignalAndWait();
                Thread.SpinWait(iteration * 10);
                lease.Retire();
            });
            await Task.WhenAll([.. users, retire]).WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);

            Assert.True(violations == 0, $"iteration {iteration}: disposed while a transaction held it");
            Assert.True(counter.Disposals == 1, $"iteration {iteration}: disposed {counter.Disposals} times, expected once");
        }
    }

    /// <summary>A producer that only counts its disposals (any other call throws).</summary>
    public class DisposalCounter : DispatchProxy
    {
        private int _disposals;

        public int Disposals => Volatile.Read(ref _disposals);

        public Action? OnDispose { get; set; }

        public static IProducer<byte[]?, byte[]?> Create(out DisposalCounter counter)
        {
            var proxy = Create<IProducer<byte[]?, byte[]?>, DisposalCounter>();
            counter = (DisposalCounter)(object)proxy;
            return proxy;
        }

        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
        {
            if (targetMethod?.Name == nameof(IDisposable.Dispose))
            {
                OnDispose?.Invoke();
                Interlocked.Increment(ref _disposals);
                return null;
            }

            throw new NotSupportedException(targetMethod?.Name);
        }
    }
}
