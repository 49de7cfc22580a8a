using System.Text;
using System.Text.RegularExpressions;
using Confluent.Kafka;
using Kafka.Reliable.Idempotency;

namespace Kafka.Reliable.Idempotency.Tests;

/// <summary>
/// The strings the gate gives the store: keys and owners are stored by shared stores (a consumer of an older version
/// finds the keys of a newer one), so their values must not change when the way they are built does.
/// </summary>
public sealed partial class GateKeyTests
{
    private readonly OwnerRecordingStore _store = new();
    private readonly IdempotencyGate _gate;

    public GateKeyTests() => _gate = new IdempotencyGate(_store, transactional: false, "orders-group", new IdempotencyOptions());

    [Fact]
    public void Key_WithoutSelectorOrHeader_IsGroupTopicPartitionOffset()
    {
        Assert.Equal("orders-group/orders.v1-3-42", _gate.KeyFor(null, Context(partition: 3, offset: 42)));
        Assert.Equal("orders-group/orders.v1-0-0", _gate.KeyFor(string.Empty, Context(partition: 0, offset: 0)));
        Assert.Equal("orders-group/orders.v1-2147483647-9223372036854775807", _gate.KeyFor(null, Context(partition: int.MaxValue, offset: long.MaxValue)));
    }

    [Fact]
    public void Key_FromTheSelector_IsPrefixedWithTheGroup_AndWinsOverTheHeader()
    {
        var context = Context(header: Encoding.UTF8.GetBytes("from-header"));

        Assert.Equal("orders-group/order-17", _gate.KeyFor("order-17", context));
    }

    [Fact]
    public void Key_FromTheHeader_IsItsUtf8Text_PrefixedWithTheGroup()
    {
        Assert.Equal("orders-group/0b5e8f0a-é-✓", _gate.KeyFor(null, Context(header: Encoding.UTF8.GetBytes("0b5e8f0a-é-✓"))));
        Assert.Equal("orders-group/x", _gate.KeyFor(string.Empty, Context(header: "x"u8.ToArray())));

        // Bytes that are not UTF-8 decode as the replacement character, as Encoding.UTF8.GetString does.
        byte[] invalid = [0x61, 0xff, 0xc3, 0x62];
        Assert.Equal("orders-group/" + Encoding.UTF8.GetString(invalid), _gate.KeyFor(null, Context(header: invalid)));
    }

    [Fact]
    public void Key_WithAnEmptyHeader_FallsBackToTopicPartitionOffset()
    {
        Assert.Equal("orders-group/orders.v1-1-7", _gate.KeyFor(null, Context(partition: 1, offset: 7, header: [])));
    }

    [Fact]
    public void Key_LongerThan512Characters_IsRefused_Whichever_Source()
    {
        var longest = new string('k', 512 - "orders-group/".Length);
        Assert.Equal(512, _gate.KeyFor(longest, Context()).Length);
        Assert.Equal(512, _gate.KeyFor(null, Context(header: Encoding.UTF8.GetBytes(longest))).Length);

        var error = Assert.Throws<InvalidDataException>(() => _gate.KeyFor(longest + "k", Context()));
        Assert.Contains("513 characters long", error.Message, StringComparison.Ordinal);
        error = Assert.Throws<InvalidDataException>(() => _gate.KeyFor(null, Context(header: Encoding.UTF8.GetBytes(longest + "é"))));
        Assert.Contains("513 characters long", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Owner_IsTheGateInstance_TheAssignment_TopicPartitionAndOffset_AndTheSameForTheRelease()
    {
        var context = Context(partition: 3, offset: 42, assignment: 9);
        var key = _gate.KeyFor(null, context);

        var (decision, _, held) = await _gate.BeginAsync(key, context, TestContext.Current.CancellationToken);
        Assert.Equal(GateDecision.Handle, decision);
        var owner = Assert.Single(_store.Owners);
        Assert.Matches(OwnerPattern(), owner);
        Assert.EndsWith("/9/orders.v1/3/42", owner, StringComparison.Ordinal);
        Assert.Equal(owner, held!.Owner);

        // A release without the held key (the gate rebuilds the owner) names the same owner.
        await _gate.ReleaseAsync(key, null, context);
        Assert.Equal(owner, _store.Released.Single());

        // Another record of the same gate: the same instance, its own assignment and offset.
        var other = Context(partition: 0, offset: -1, assignment: long.MaxValue);
        await _gate.BeginAsync(_gate.KeyFor(null, other), other, TestContext.Current.CancellationToken);
        Assert.Equal(owner[..33] + "9223372036854775807/orders.v1/0/-1", _store.Owners[1]);
    }

    private static MessageContext Context(int partition = 0, long offset = 5, byte[]? header = null, long assignment = 1)
    {
        var headers = new Headers();
        if (header is not null)
        {
            headers.Add("message-id", header);
        }

        var context = new MessageContext("consumer", "orders-group") { Assignment = assignment };
        context.Initialize(new ConsumeResult<byte[]?, byte[]?>
        {
            Topic = "orders.v1",
            Partition = new Partition(partition),
            Offset = new Offset(offset),
            Message = new Message<byte[]?, byte[]?> { Value = [1], Headers = headers, Timestamp = new Timestamp(1_700_000_000_000, TimestampType.CreateTime) },
        });
        return context;
    }

    [GeneratedRegex("^[0-9a-f]{32}/[0-9]+/orders\\.v1/[0-9]+/[0-9]+$")]
    private static partial Regex OwnerPattern();

    /// <summary>Takes every key, and remembers who took and released them.</summary>
    private sealed class OwnerRecordingStore : IIdempotencyStore
    {
        public List<string> Owners { get; } = [];

        public List<string> Released { get; } = [];

        public ValueTask<IdempotencyBeginResult> TryBeginAsync(string key, string owner, TimeSpan lease, CancellationToken cancellationToken)
        {
            Owners.Add(owner);
            return ValueTask.FromResult(IdempotencyBeginResult.Acquired);
        }

        public ValueTask<IdempotencyLeaseStatus> CompleteAsync(string key, string owner, CancellationToken cancellationToken) => ValueTask.FromResult(IdempotencyLeaseStatus.Held);

        public ValueTask<IdempotencyLeaseStatus> RenewAsync(string key, string owner, TimeSpan lease, CancellationToken cancellationToken) => ValueTask.FromResult(IdempotencyLeaseStatus.Held);

        public ValueTask ReleaseAsync(string key, string owner, CancellationToken cancellationToken)
        {
            Released.Add(owner);
            return ValueTask.CompletedTask;
        }

        public ValueTask<long> CleanupAsync(DateTimeOffset completedBefore, CancellationToken cancellationToken) => ValueTask.FromResult(0L);
    }
}
