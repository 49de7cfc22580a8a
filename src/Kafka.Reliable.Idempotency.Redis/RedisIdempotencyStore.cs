using StackExchange.Redis;

namespace Kafka.Reliable.Idempotency.Redis;

/// <summary>
/// An idempotency store in Redis, shared by every instance of a consumer group. A key is taken with <c>SET key owner NX PX
/// lease</c>; completing it replaces the lease by a completion marker that Redis expires after the retention, so no cleanup
/// job is needed. Each transition is one atomic command or script.
/// </summary>
/// <remarks>
/// Redis acknowledges writes before they reach its disk (depending on <c>appendfsync</c>) and replicates asynchronously: a
/// Redis crash can forget recent completions, which then lets a redelivered message be handled again. Use the PostgreSQL
/// store in transactional mode where effects must happen exactly once.
/// </remarks>
public sealed class RedisIdempotencyStore : IIdempotencyStore, IAsyncDisposable
{
    private const string OwnerPrefix = "p:";

    // A completed key holds 'c:' and the owner that completed it ('c' alone before 2026-12), so that the owner's completion
    // retried after a lost reply is recognized as done rather than taken for a lost lease.
    private const string CompletedPrefix = "c:";

    // @key the key; @owner the owner marker; @lease the lease in ms. Returns {1} taken, {2} completed, {3, pttl} held.
    private static readonly LuaScript Begin = LuaScript.Prepare("""
        local value = redis.call('GET', @key)
        if not value then
          redis.call('SET', @key, @owner, 'PX', @lease)
          return {1, 0}
        end
        if value == 'c' or string.sub(value, 1, 2) == 'c:' then return {2, 0} end
        if value == @owner then
          redis.call('SET', @key, @owner, 'PX', @lease)
          return {1, 0}
        end
        return {3, redis.call('PTTL', @key)}
        """);

    // Returns 1 when the key is completed by this owner (now or before), 0 when the owner no longer holds it.
    private static readonly LuaScript Complete = LuaScript.Prepare("""
        local value = redis.call('GET', @key)
        if value == @owner then
          redis.call('SET', @key, @done, 'PX', @retention)
          return 1
        end
        if value == @done then return 1 end
        return 0
        """);

    // Returns 1 when the lease was extended, 0 when the owner no longer holds the key in progress.
    private static readonly LuaScript Renew = LuaScript.Prepare("""
        if redis.call('GET', @key) == @owner then
          redis.call('PEXPIRE', @key, @lease)
          return 1
        end
        return 0
        """);

    private static readonly LuaScript Release = LuaScript.Prepare("""
        if redis.call('GET', @key) == @owner then
          return redis.call('DEL', @key)
        end
        return 0
        """);

    private readonly RedisIdempotencyOptions _options;
    private readonly ConfigurationOptions? _configuration;
    private readonly Lock _connectionLock = new();

    // The store's own connection, created on first use from the configuration string; or the application's, given to the
    // constructor, which the store uses and never closes.
    private Task<IConnectionMultiplexer>? _connection;
    private readonly bool _ownsConnection;
    private bool _disposed;

    /// <summary>Initializes a new instance of the <see cref="RedisIdempotencyStore"/> class.</summary>
    /// <param name="options">The settings.</param>
    /// <param name="connection">
    /// The application's connection to use (it stays the application's: the store does not close it); by default the store
    /// connects with <see cref="RedisIdempotencyOptions.Configuration"/> and closes that connection when it is disposed.
    /// </param>
    /// <exception cref="ArgumentException">No connection is given and the configuration string is missing, or the retention is not positive.</exception>
    public RedisIdempotencyStore(RedisIdempotencyOptions options, IConnectionMultiplexer? connection = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (connection is null && string.IsNullOrWhiteSpace(options.Configuration))
        {
            throw new ArgumentException("Configuration is required, for example 'localhost:6379', unless the store is given the application's IConnectionMultiplexer.", nameof(options));
        }

        if (options.Retention <= TimeSpan.Zero)
        {
            throw new ArgumentException($"Retention is {options.Retention}: use a positive duration, for example 7 days.", nameof(options));
        }

        _options = options;
        if (connection is not null)
        {
            _connection = Task.FromResult(connection);
            return;
        }

        _ownsConnection = true;
        _configuration = ConfigurationOptions.Parse(options.Configuration);

        // Redis down when the consumer starts must not be fatal: the multiplexer comes up disconnected and reconnects by itself,
        // and the store's calls fail (as transient failures, retried by the consumer) until it is back.
        _configuration.AbortOnConnectFail = false;
    }

    /// <inheritdoc />
    public async ValueTask<IdempotencyBeginResult> TryBeginAsync(string key, string owner, TimeSpan lease, CancellationToken cancellationToken)
    {
        var database = await DatabaseAsync().ConfigureAwait(false);
        RedisKey redisKey = _options.KeyPrefix + key;
        RedisValue ownerMarker = OwnerPrefix + owner;
        if (await database.StringSetAsync(redisKey, ownerMarker, lease, When.NotExists).ConfigureAwait(false))
        {
            return IdempotencyBeginResult.Acquired;
        }

        var result = (RedisResult[])(await database.ScriptEvaluateAsync(Begin, new { key = redisKey, owner = ownerMarker, lease = (long)lease.TotalMilliseconds }).ConfigureAwait(false))!;
        return (int)result[0] switch
        {
            1 => IdempotencyBeginResult.Acquired,
            2 => IdempotencyBeginResult.AlreadyCompleted,
            _ => IdempotencyBeginResult.HeldByAnother(TimeSpan.FromMilliseconds(Math.Max(0, (long)result[1]))),
        };
    }

    /// <inheritdoc />
    public async ValueTask<IdempotencyLeaseStatus> CompleteAsync(string key, string owner, CancellationToken cancellationToken)
    {
        var database = await DatabaseAsync().ConfigureAwait(false);
        var result = await database.ScriptEvaluateAsync(Complete, new
        {
            key = (RedisKey)(_options.KeyPrefix + key),
            owner = (RedisValue)(OwnerPrefix + owner),
            done = (RedisValue)(CompletedPrefix + owner),
            retention = (long)_options.Retention.TotalMilliseconds,
        }).ConfigureAwait(false);
        return (int)result == 1 ? IdempotencyLeaseStatus.Held : IdempotencyLeaseStatus.Lost;
    }

    /// <inheritdoc />
    public async ValueTask<IdempotencyLeaseStatus> RenewAsync(string key, string owner, TimeSpan lease, CancellationToken cancellationToken)
    {
        var database = await DatabaseAsync().ConfigureAwait(false);
        var result = await database.ScriptEvaluateAsync(Renew, new
        {
            key = (RedisKey)(_options.KeyPrefix + key),
            owner = (RedisValue)(OwnerPrefix + owner),
            lease = (long)lease.TotalMilliseconds,
        }).ConfigureAwait(false);
        return (int)result == 1 ? IdempotencyLeaseStatus.Held : IdempotencyLeaseStatus.Lost;
    }

    /// <inheritdoc />
    public async ValueTask ReleaseAsync(string key, string owner, CancellationToken cancellationToken)
    {
        var database = await DatabaseAsync().ConfigureAwait(false);
        await database.ScriptEvaluateAsync(Release, new { key = (RedisKey)(_options.KeyPrefix + key), owner = (RedisValue)(OwnerPrefix + owner) }).ConfigureAwait(false);
    }

    /// <summary>Does nothing: Redis expires completed keys after the retention, and leases after their duration, by itself.</summary>
    /// <param name="completedBefore">Ignored.</param>
    /// <param name="cancellationToken">Ignored.</param>
    /// <returns>0.</returns>
    public ValueTask<long> CleanupAsync(DateTimeOffset completedBefore, CancellationToken cancellationToken) => ValueTask.FromResult(0L);

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        Task<IConnectionMultiplexer>? connecting;
        lock (_connectionLock)
        {
            _disposed = true;
            connecting = _connection;
            _connection = null;
        }

        if (connecting is not null && _ownsConnection)
        {
            try
            {
                var connection = await connecting.ConfigureAwait(false);
                await connection.DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is RedisException or ObjectDisposedException)
            {
                // The connection never came up: nothing to close.
            }
        }
    }

    private async ValueTask<IDatabase> DatabaseAsync() => (await ConnectAsync().ConfigureAwait(false)).GetDatabase(_options.Database);

    /// <summary>
    /// Gets the shared connection, connecting on first use. A connection attempt that failed is not kept: the next call tries
    /// again, so a store whose Redis was down at first use recovers once Redis is back.
    /// </summary>
    private Task<IConnectionMultiplexer> ConnectAsync()
    {
        lock (_connectionLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_connection is null || _connection.IsFaulted || _connection.IsCanceled)
            {
                _connection = ConnectOwnAsync(_configuration!);
            }

            return _connection;
        }
    }

    private static async Task<IConnectionMultiplexer> ConnectOwnAsync(ConfigurationOptions configuration) =>
        await ConnectionMultiplexer.ConnectAsync(configuration).ConfigureAwait(false);
}
