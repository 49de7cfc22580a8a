using Kafka.Reliable.Idempotency;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using BenchmarkDotNet.Attributes;
using Confluent.Kafka;
using System.Runtime.CompilerServices;
using Kafka.Reliable.Consuming;
using Kafka.Reliable.Pipeline;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Polly;

namespace Kafka.Reliable.Benchmarks;

/// <summary>One record through deserialize -> translate -> handle, as a partition worker runs it, without a broker.</summary>
[MemoryDiagnoser]
public class PipelineBenchmarks
{
    private const int Records = 1024;
    private readonly ConsumeResult<byte[]?, byte[]?>[] _records = new ConsumeResult<byte[]?, byte[]?>[Records];
    private readonly MessageContext _context = new("bench", "group");
    private RecordProcessor<Payload, Payload> _noOp = null!;
    private RecordProcessor<OrderEvent, OrderEvent> _json = null!;
    private RecordProcessor<OrderEvent, Order> _jsonTranslated = null!;
    private ResilientAttempt _withRetry = null!;
    private static long s_nextKey;
    private RecordProcessor<Payload, Payload> _inMemoryIdempotency = null!;
    private ResilientAttempt _withRetryAndBreaker = null!;
    private RecordProcessor<Payload, Payload> _scoped = null!;
    private IServiceScopeFactory _scopes = null!;

    [GlobalSetup]
    public void Setup()
    {
        var value = JsonSerializer.SerializeToUtf8Bytes(new OrderEvent("o-00042", 3, 59.85m), BenchJsonContext.Default.OrderEvent);
        for (var i = 0; i < Records; i++)
        {
            _records[i] = new ConsumeResult<byte[]?, byte[]?>
            {
                Topic = "orders",
                Partition = new Partition(i % 6),
                Offset = new Offset(i),
                Message = new Message<byte[]?, byte[]?> { Key = Encoding.UTF8.GetBytes("o-00042"), Value = value, Headers = [], Timestamp = new Timestamp(1_700_000_000_000, TimestampType.CreateTime) },
            };
        }

        var services = new ServiceCollection()
            .AddSingleton<NoOpHandler<Payload>>()
            .AddSingleton<NoOpHandler<OrderEvent>>()
            .AddSingleton<NoOpHandler<Order>>()
            .AddScoped<ScopedNoOpHandler>()
            .BuildServiceProvider();
        _noOp = new RecordProcessor<Payload, Payload>(new PassThroughDeserializer(), IdentityTranslator<Payload>.Instance, static sp => sp.GetRequiredService<NoOpHandler<Payload>>(), handlerIsSingleton: true, services);
        _scoped = new RecordProcessor<Payload, Payload>(new PassThroughDeserializer(), IdentityTranslator<Payload>.Instance, static sp => sp.GetRequiredService<ScopedNoOpHandler>(), handlerIsSingleton: false, services);
        _scopes = services.GetRequiredService<IServiceScopeFactory>();
        var json = new JsonMessageDeserializer<OrderEvent>(BenchJsonContext.Default.OrderEvent);
        _json = new RecordProcessor<OrderEvent, OrderEvent>(json, IdentityTranslator<OrderEvent>.Instance, static sp => sp.GetRequiredService<NoOpHandler<OrderEvent>>(), handlerIsSingleton: true, services);
        _jsonTranslated = new RecordProcessor<OrderEvent, Order>(json, new OrderTranslator(), static sp => sp.GetRequiredService<NoOpHandler<Order>>(), handlerIsSingleton: true, services);

        // A key per record: each one is taken and completed, as first deliveries are.
        _inMemoryIdempotency = new RecordProcessor<Payload, Payload>(
            new PassThroughDeserializer(), IdentityTranslator<Payload>.Instance, static sp => sp.GetRequiredService<NoOpHandler<Payload>>(), handlerIsSingleton: true, services,
            new Kafka.Reliable.Idempotency.IdempotencyGate(new InMemoryIdempotencyStore(maxEntries: 10_000), transactional: false, "group", new IdempotencyOptions()),
            static (_, _) => Interlocked.Increment(ref s_nextKey).ToString(System.Globalization.CultureInfo.InvariantCulture));

        var retryOnly = new ReliableConsumerOptions();
        _withRetry = new ResilientAttempt(_noOp, _context, HandlerResilience.Build(new ConsumerContext("bench", retryOnly, NullLogger.Instance, TimeProvider.System)));
        var withBreaker = new ReliableConsumerOptions();
        withBreaker.CircuitBreaker.Enabled = true;
        _withRetryAndBreaker = new ResilientAttempt(_noOp, _context, HandlerResilience.Build(new ConsumerContext("bench", withBreaker, NullLogger.Instance, TimeProvider.System)));
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Records, Description = "no-op handler, pass-through deserializer")]
    public async Task NoOp()
    {
        for (var i = 0; i < Records; i++)
        {
            _context.Initialize(_records[i]);
            await _noOp.ProcessAsync(_context, CancellationToken.None);
            _context.Reset();
        }
    }

    /// <summary>The default registration: a scope per record, the handler resolved in it.</summary>
    [Benchmark(OperationsPerInvoke = Records, Description = "scoped no-op handler (the default lifetime)")]
    public async Task ScopedNoOp()
    {
        for (var i = 0; i < Records; i++)
        {
            _context.Initialize(_records[i]);
            await _scoped.ProcessAsync(_context, CancellationToken.None);
            _context.Reset();
        }
    }

    /// <summary>What the DI container alone costs for the scoped row: create a scope, resolve the handler, dispose the scope.</summary>
    [Benchmark(OperationsPerInvoke = Records, Description = "reference: DI scope + resolve + dispose alone")]
    public async Task ScopeAlone()
    {
        for (var i = 0; i < Records; i++)
        {
            var scope = _scopes.CreateAsyncScope();
            await using (scope.ConfigureAwait(false))
            {
                await scope.ServiceProvider.GetRequiredService<ScopedNoOpHandler>().HandleAsync(default, _context, CancellationToken.None).ConfigureAwait(false);
            }
        }
    }

    [Benchmark(OperationsPerInvoke = Records, Description = "no-op handler, every attempt through Polly retry")]
    public async Task NoOpWithRetry()
    {
        for (var i = 0; i < Records; i++)
        {
            _context.Initialize(_records[i]);
            await _withRetry.RunAsync();
            _context.Reset();
        }
    }

    [Benchmark(OperationsPerInvoke = Records, Description = "no-op handler, every attempt through Polly retry + circuit breaker")]
    public async Task NoOpWithRetryAndBreaker()
    {
        for (var i = 0; i < Records; i++)
        {
            _context.Initialize(_records[i]);
            await _withRetryAndBreaker.RunAsync();
            _context.Reset();
        }
    }

    [Benchmark(OperationsPerInvoke = Records, Description = "no-op handler behind the in-memory idempotency store")]
    public async Task NoOpWithInMemoryIdempotency()
    {
        for (var i = 0; i < Records; i++)
        {
            _context.Initialize(_records[i]);
            await _inMemoryIdempotency.ProcessAsync(_context, CancellationToken.None);
            _context.Reset();
        }
    }

    /// <summary>The same payload through System.Text.Json alone: the part of the JSON rows that is not the library's.</summary>
    [Benchmark(OperationsPerInvoke = Records, Description = "reference: JsonSerializer.Deserialize alone")]
    public int JsonAlone()
    {
        var lines = 0;
        for (var i = 0; i < Records; i++)
        {
            lines += JsonSerializer.Deserialize(_records[i].Message.Value, BenchJsonContext.Default.OrderEvent)!.Lines;
        }

        return lines;
    }

    [Benchmark(OperationsPerInvoke = Records, Description = "source-generated JSON, no-op handler")]
    public async Task JsonNoOpHandler()
    {
        for (var i = 0; i < Records; i++)
        {
            _context.Initialize(_records[i]);
            await _json.ProcessAsync(_context, CancellationToken.None);
            _context.Reset();
        }
    }

    [Benchmark(OperationsPerInvoke = Records, Description = "source-generated JSON + translator, no-op handler")]
    public async Task JsonTranslatedNoOpHandler()
    {
        for (var i = 0; i < Records; i++)
        {
            _context.Initialize(_records[i]);
            await _jsonTranslated.ProcessAsync(_context, CancellationToken.None);
            _context.Reset();
        }
    }

    /// <summary>Runs one record through the resilience pipeline the way a partition worker does.</summary>
    private sealed class ResilientAttempt(IRecordProcessor processor, MessageContext context, ResiliencePipeline pipeline)
    {
        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
        public async ValueTask RunAsync()
        {
            var resilience = ResilienceContextPool.Shared.Get(CancellationToken.None);
            try
            {
                await pipeline.ExecuteOutcomeAsync(static (_, self) => self.AttemptAsync(), resilience, this).ConfigureAwait(false);
            }
            finally
            {
                ResilienceContextPool.Shared.Return(resilience);
            }
        }

        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
        private async ValueTask<Outcome<ProcessingOutcome>> AttemptAsync() =>
            Outcome.FromResult(await processor.ProcessAsync(context, CancellationToken.None).ConfigureAwait(false));
    }

    /// <summary>A message that costs nothing to produce, so that the figure is the library's own.</summary>
    public readonly record struct Payload(int Length);

    public sealed record OrderEvent(string OrderId, int Lines, decimal Total);

    public readonly record struct Order(int Lines, decimal Total);

    private sealed class PassThroughDeserializer : IMessageDeserializer<Payload>
    {
        public Payload Deserialize(ReadOnlySpan<byte> value, bool isNull, MessageContext context) => new(value.Length);
    }

    private sealed class OrderTranslator : IMessageTranslator<OrderEvent, Order>
    {
        public Order Translate(OrderEvent message, MessageContext context) => new(message.Lines, message.Total);
    }

    private sealed class NoOpHandler<T> : IMessageHandler<T>
    {
        public ValueTask HandleAsync(T message, MessageContext context, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }

    private sealed class ScopedNoOpHandler : IMessageHandler<Payload>
    {
        public ValueTask HandleAsync(Payload message, MessageContext context, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }
}

[JsonSerializable(typeof(PipelineBenchmarks.OrderEvent))]
internal sealed partial class BenchJsonContext : JsonSerializerContext;
