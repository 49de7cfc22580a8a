using Confluent.Kafka;
using Kafka.Reliable.Idempotency.PostgreSql;
using Kafka.Reliable.Idempotency.Redis;
using Kafka.Reliable.Idempotency.Sqlite;
using Kafka.Reliable.Idempotency.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace Kafka.Reliable.Idempotency.Tests;

/// <summary>The same cases for every store: what a consumer relies on, whatever keeps its keys.</summary>
public abstract class StoreContractTests : IAsyncLifetime
{
    protected static readonly TimeSpan Lease = TimeSpan.FromSeconds(30);

    protected FakeTimeProvider Time { get; } = new(DateTimeOffset.UtcNow);

    protected IIdempotencyStore Store { get; private set; } = null!;

    public async ValueTask InitializeAsync() => Store = await CreateStoreAsync();

    public async ValueTask DisposeAsync()
    {
        if (Store is IAsyncDisposable disposable)
        {
            await disposable.DisposeAsync();
        }
    }

    protected abstract Task<IIdempotencyStore> CreateStoreAsync();

    /// <summary>Lets time pass for leases and retention: the fake clock for stores that read it, real time for Redis, which expires keys itself.</summary>
    protected virtual Task PassAsync(TimeSpan duration)
    {
        Time.Advance(duration);
        return Task.CompletedTask;
    }

    /// <summary>Gets the lease the expiry case uses; short where real time must pass.</summary>
    protected virtual TimeSpan ShortLease => Lease;

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Begin_Complete_ThenTheKeyIsCompleted_ForEveryOwner()
    {
        var key = NewKey();
        Assert.Equal(IdempotencyStatus.Acquired, (await Store.TryBeginAsync(key, "a", Lease, Token)).Status);
        await Store.CompleteAsync(key, "a", Token);

        Assert.Equal(IdempotencyStatus.AlreadyCompleted, (await Store.TryBeginAsync(key, "a", Lease, Token)).Status);
        Assert.Equal(IdempotencyStatus.AlreadyCompleted, (await Store.TryBeginAsync(key, "b", Lease, Token)).Status);
    }

    [Fact]
    public async Task Begin_Release_ThenAnotherOwnerTakesTheKeyAtOnce()
    {
        var key = NewKey();
        Assert.Equal(IdempotencyStatus.Acquired, (await Store.TryBeginAsync(key, "a", Lease, Token)).Status);
        await Store.ReleaseAsync(key, "a", Token);

        Assert.Equal(IdempotencyStatus.Acquired, (await Store.TryBeginAsync(key, "b", Lease, Token)).Status);
    }

    [Fact]
    public async Task HeldKey_IsRefusedToOthers_TakenAgainByItsOwner_AndNotCompletedOrReleasedByOthers()
    {
        var key = NewKey();
        Assert.Equal(IdempotencyStatus.Acquired, (await Store.TryBeginAsync(key, "a", Lease, Token)).Status);

        var held = await Store.TryBeginAsync(key, "b", Lease, Token);
        Assert.Equal(IdempotencyStatus.HeldByAnother, held.Status);
        Assert.InRange(held.RetryAfter, TimeSpan.FromSeconds(1), Lease);
        Assert.Equal(IdempotencyStatus.Acquired, (await Store.TryBeginAsync(key, "a", Lease, Token)).Status);

        await Store.CompleteAsync(key, "b", Token);
        await Store.ReleaseAsync(key, "b", Token);
        Assert.Equal(IdempotencyStatus.HeldByAnother, (await Store.TryBeginAsync(key, "b", Lease, Token)).Status);
    }

    [Fact]
    public async Task CrashedHoldersLease_Expires_ThenAnotherOwnerTakesTheKey_AndTheCrashedOneCannotCompleteIt()
    {
        var key = NewKey();
        Assert.Equal(IdempotencyStatus.Acquired, (await Store.TryBeginAsync(key, "crashed", ShortLease, Token)).Status);
        Assert.Equal(IdempotencyStatus.HeldByAnother, (await Store.TryBeginAsync(key, "b", Lease, Token)).Status);

        await PassAsync(ShortLease + TimeSpan.FromMilliseconds(200));

        Assert.Equal(IdempotencyStatus.Acquired, (await Store.TryBeginAsync(key, "b", Lease, Token)).Status);
        await Store.CompleteAsync(key, "crashed", Token);
        Assert.Equal(IdempotencyStatus.HeldByAnother, (await Store.TryBeginAsync(key, "c", Lease, Token)).Status);
        await Store.CompleteAsync(key, "b", Token);
        Assert.Equal(IdempotencyStatus.AlreadyCompleted, (await Store.TryBeginAsync(key, "c", Lease, Token)).Status);
    }

    [Fact]
    public async Task ConcurrentBeginsOnTheSameKey_ExactlyOneWins()
    {
        for (var round = 0; round < 20; round++)
        {
            var key = NewKey();
            using var start = new ManualResetEventSlim();
            var contenders = Enumerable.Range(0, 4).Select(i => Task.Run(async () =>
            {
                start.Wait(Token);
                return await Store.TryBeginAsync(key, $"owner-{i}", Lease, Token);
            })).ToList();
            start.Set();
            var results = await Task.WhenAll(contenders);

            Assert.Equal(1, results.Count(r => r.Status == IdempotencyStatus.Acquired));
            Assert.Equal(3, results.Count(r => r.Status == IdempotencyStatus.HeldByAnother));
        }
    }

    [Fact]
    public virtual async Task Retention_RemovesCompletedKeysOlderThanIt_AndExpiredLeases_AndKeepsTheRest()
    {
        var old = NewKey();
        var recent = NewKey();
        var abandoned = NewKey();
        await Store.TryBeginAsync(old, "a", Lease, Token);
        await Store.CompleteAsync(old, "a", Token);
        await Store.TryBeginAsync(abandoned, "crashed", Lease, Token);
        await PassAsync(TimeSpan.FromHours(2));
        await Store.TryBeginAsync(recent, "a", Lease, Token);
        await Store.CompleteAsync(recent, "a", Token);

        var removed = await Store.CleanupAsync(Time.GetUtcNow() - TimeSpan.FromHours(1), Token);

        Assert.True(removed >= 2, $"the old key and the expired lease are removed (removed {removed})");
        Assert.Equal(IdempotencyStatus.Acquired, (await Store.TryBeginAsync(old, "b", Lease, Token)).Status);
        Assert.Equal(IdempotencyStatus.AlreadyCompleted, (await Store.TryBeginAsync(recent, "b", Lease, Token)).Status);
    }

    [Fact]
    public async Task Renew_ExtendsTheLease_SoThatNoOtherOwnerTakesTheKeyAfterTheFirstLease()
    {
        var key = NewKey();
        Assert.Equal(IdempotencyStatus.Acquired, (await Store.TryBeginAsync(key, "slow", ShortLease, Token)).Status);

        Assert.Equal(IdempotencyLeaseStatus.Held, await Store.RenewAsync(key, "slow", ShortLease + Lease, Token));
        await PassAsync(ShortLease + TimeSpan.FromMilliseconds(200));

        Assert.Equal(IdempotencyStatus.HeldByAnother, (await Store.TryBeginAsync(key, "b", Lease, Token)).Status);
        Assert.Equal(IdempotencyLeaseStatus.Held, await Store.CompleteAsync(key, "slow", Token));
        Assert.Equal(IdempotencyStatus.AlreadyCompleted, (await Store.TryBeginAsync(key, "b", Lease, Token)).Status);
    }

    [Fact]
    public async Task CompleteAndRenew_ByAnOwnerWhoseLeaseWasTakenOver_ReturnLost_AndChangeNothing()
    {
        var key = NewKey();
        Assert.Equal(IdempotencyStatus.Acquired, (await Store.TryBeginAsync(key, "slow", ShortLease, Token)).Status);
        await PassAsync(ShortLease + TimeSpan.FromMilliseconds(200));
        Assert.Equal(IdempotencyStatus.Acquired, (await Store.TryBeginAsync(key, "b", Lease, Token)).Status);

        Assert.Equal(IdempotencyLeaseStatus.Lost, await Store.RenewAsync(key, "slow", Lease, Token));
        Assert.Equal(IdempotencyLeaseStatus.Lost, await Store.CompleteAsync(key, "slow", Token));

        Assert.Equal(IdempotencyStatus.HeldByAnother, (await Store.TryBeginAsync(key, "c", Lease, Token)).Status);
        Assert.Equal(IdempotencyLeaseStatus.Held, await Store.CompleteAsync(key, "b", Token));
        Assert.Equal(IdempotencyLeaseStatus.Lost, await Store.RenewAsync(key, "b", Lease, Token));
    }

    [Fact]
    public async Task CompleteAndRenew_OfAnAbsentKey_ReturnLost()
    {
        var key = NewKey();
        Assert.Equal(IdempotencyLeaseStatus.Lost, await Store.CompleteAsync(key, "a", Token));
        Assert.Equal(IdempotencyLeaseStatus.Lost, await Store.RenewAsync(key, "a", Lease, Token));
        Assert.Equal(IdempotencyStatus.Acquired, (await Store.TryBeginAsync(key, "b", Lease, Token)).Status);
    }

    [Fact]
    public async Task Complete_RetriedByItsOwner_IsHeldBothTimes()
    {
        var key = NewKey();
        await Store.TryBeginAsync(key, "a", Lease, Token);

        Assert.Equal(IdempotencyLeaseStatus.Held, await Store.CompleteAsync(key, "a", Token));
        Assert.Equal(IdempotencyLeaseStatus.Held, await Store.CompleteAsync(key, "a", Token));
        Assert.Equal(IdempotencyStatus.AlreadyCompleted, (await Store.TryBeginAsync(key, "b", Lease, Token)).Status);
    }

    [Fact]
    public virtual async Task Cleanup_KeepsALeaseThatExpiredRecently_SoThatItsHolderCanStillCompleteIt()
    {
        var key = NewKey();
        await Store.TryBeginAsync(key, "slow", Lease, Token);
        await PassAsync(Lease + TimeSpan.FromMinutes(1));

        await Store.CleanupAsync(Time.GetUtcNow() - TimeSpan.FromHours(1), Token);

        Assert.Equal(IdempotencyLeaseStatus.Held, await Store.CompleteAsync(key, "slow", Token));
        Assert.Equal(IdempotencyStatus.AlreadyCompleted, (await Store.TryBeginAsync(key, "b", Lease, Token)).Status);
    }

    protected static string NewKey() => "group/" + Guid.NewGuid().ToString("N");
}

public sealed class InMemoryStoreContractTests : StoreContractTests
{
    protected override Task<IIdempotencyStore> CreateStoreAsync() => Task.FromResult<IIdempotencyStore>(new InMemoryIdempotencyStore(timeProvider: Time));

    [Fact]
    public async Task MaxEntries_ForgetsTheOldestCompletedKeys()
    {
        var store = new InMemoryIdempotencyStore(maxEntries: 3, Time);
        var keys = Enumerable.Range(0, 5).Select(_ => NewKey()).ToList();
        foreach (var key in keys)
        {
            await store.TryBeginAsync(key, "a", TimeSpan.FromMinutes(1), TestContext.Current.CancellationToken);
            await store.CompleteAsync(key, "a", TestContext.Current.CancellationToken);
        }

        Assert.Equal(3, store.Count);
        Assert.Equal(IdempotencyStatus.Acquired, (await store.TryBeginAsync(keys[0], "b", TimeSpan.FromMinutes(1), TestContext.Current.CancellationToken)).Status);
        Assert.Equal(IdempotencyStatus.AlreadyCompleted, (await store.TryBeginAsync(keys[4], "b", TimeSpan.FromMinutes(1), TestContext.Current.CancellationToken)).Status);
    }
}

public sealed class SqliteStoreContractTests : StoreContractTests, IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), $"kafka-reliable-{Guid.NewGuid():N}.db");

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        foreach (var file in new[] { _path, _path + "-wal", _path + "-shm" })
        {
            File.Delete(file);
        }
    }

    protected override Task<IIdempotencyStore> CreateStoreAsync() =>
        Task.FromResult<IIdempotencyStore>(new SqliteIdempotencyStore(new SqliteIdempotencyOptions { ConnectionString = $"Data Source={_path}" }, Time));
}

public sealed class PostgreSqlStoreContractTests(PostgresServer postgres) : StoreContractTests
{
    protected override async Task<IIdempotencyStore> CreateStoreAsync() =>
        new PostgreSqlIdempotencyStore(new PostgreSqlIdempotencyOptions { ConnectionString = await postgres.CreateDatabaseAsync() }, Time);
}

public sealed class RedisStoreContractTests(RedisServer redis) : StoreContractTests
{
    private RedisIdempotencyStore? _redis;

    // Redis expires keys in real time: long enough that a loaded machine never lets a lease lapse between two calls.
    protected override TimeSpan ShortLease => TimeSpan.FromSeconds(2);

    protected override Task<IIdempotencyStore> CreateStoreAsync()
    {
        _redis = new RedisIdempotencyStore(new RedisIdempotencyOptions { Configuration = redis.Configuration, KeyPrefix = $"test-{Guid.NewGuid():N}:", Retention = TimeSpan.FromSeconds(5) });
        return Task.FromResult<IIdempotencyStore>(_redis);
    }

    /// <summary>
    /// Redis has no cleanup: it expires a lease by itself when it runs out, so a late completion finds the lease gone and
    /// says so (Lost), which the consumer logs and counts, instead of keeping it for its holder as the SQL stores do.
    /// </summary>
    [Fact]
    public override async Task Cleanup_KeepsALeaseThatExpiredRecently_SoThatItsHolderCanStillCompleteIt()
    {
        var key = NewKey();
        await Store.TryBeginAsync(key, "slow", ShortLease, TestContext.Current.CancellationToken);
        await PassAsync(ShortLease + TimeSpan.FromMilliseconds(500));

        Assert.Equal(0, await Store.CleanupAsync(DateTimeOffset.UtcNow - TimeSpan.FromHours(1), TestContext.Current.CancellationToken));
        Assert.Equal(IdempotencyLeaseStatus.Lost, await Store.CompleteAsync(key, "slow", TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task Store_WhoseRedisWasDownAtFirstUse_WorksOnceRedisIsUp()
    {
        var port = FreePort.Next();
        await using var store = new RedisIdempotencyStore(new RedisIdempotencyOptions { Configuration = $"127.0.0.1:{port},connectTimeout=1000,asyncTimeout=2000" });
        var key = NewKey();

        await Assert.ThrowsAnyAsync<Exception>(async () => await store.TryBeginAsync(key, "a", Lease, TestContext.Current.CancellationToken));

        await using var late = await RedisServer.StartAsync(port);
        IdempotencyStatus? status = null;
        await Eventually.TrueAsync(
            () =>
            {
                try
                {
                    status = store.TryBeginAsync(key, "a", Lease, TestContext.Current.CancellationToken).AsTask().GetAwaiter().GetResult().Status;
                }
                catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException)
                {
                    return false;
                }

                return true;
            },
            "the store reaches the Redis server started after its first, failed call");
        Assert.Equal(IdempotencyStatus.Acquired, status);
    }

    // Redis expires keys by itself: real time has to pass.
    protected override Task PassAsync(TimeSpan duration) => Task.Delay(duration < TimeSpan.FromSeconds(5) ? duration : TimeSpan.FromMilliseconds(5200), TestContext.Current.CancellationToken);

    [Fact]
    public override async Task Retention_RemovesCompletedKeysOlderThanIt_AndExpiredLeases_AndKeepsTheRest()
    {
        // Completed keys expire after RedisIdempotencyOptions.Retention (5 s here), leases after their duration.
        var old = NewKey();
        var abandoned = NewKey();
        await Store.TryBeginAsync(old, "a", TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
        await Store.CompleteAsync(old, "a", TestContext.Current.CancellationToken);
        await Store.TryBeginAsync(abandoned, "crashed", TimeSpan.FromSeconds(2), TestContext.Current.CancellationToken);
        Assert.Equal(IdempotencyStatus.AlreadyCompleted, (await Store.TryBeginAsync(old, "b", TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken)).Status);

        await Task.Delay(TimeSpan.FromMilliseconds(5200), TestContext.Current.CancellationToken);

        Assert.Equal(IdempotencyStatus.Acquired, (await Store.TryBeginAsync(old, "b", TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken)).Status);
        Assert.Equal(IdempotencyStatus.Acquired, (await Store.TryBeginAsync(abandoned, "b", TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken)).Status);
        Assert.Equal(0, await Store.CleanupAsync(DateTimeOffset.UtcNow, TestContext.Current.CancellationToken));
    }
}
