using Kafka.Reliable.Idempotency.PostgreSql;
using Kafka.Reliable.Idempotency.Redis;
using Kafka.Reliable.Idempotency.Sqlite;
using Kafka.Reliable.Idempotency.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Npgsql;
using StackExchange.Redis;

namespace Kafka.Reliable.Idempotency.Tests;

/// <summary>
/// The stores' options: named per consumer, bound from configuration, validated when the host starts, and the application's
/// own NpgsqlDataSource / IConnectionMultiplexer used (and left open) instead of a connection of the store's own.
/// </summary>
public sealed class StoreOptionsTests(PostgresServer postgres, RedisServer redis)
{
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(30);

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public void Sqlite_BoundFromConfiguration_ChoosesTheModeAndTheTable()
    {
        var path = TempDatabase();
        var builder = NewHost(new()
        {
            ["Stores:Orders:ConnectionString"] = $"Data Source={path}",
            ["Stores:Orders:TableName"] = "orders_keys",
            ["Stores:Orders:Transactional"] = "true",
        });
        builder.Services.AddReliableConsumer<int>("orders", Valid).UseSqliteIdempotency(builder.Configuration.GetSection("Stores:Orders"));
        using var host = builder.Build();

        var store = host.Services.GetRequiredService<IOptionsMonitor<IdempotencyStoreOptions>>().Get("orders");
        Assert.True(store.IsTransactional, "Transactional = true from configuration makes the store transactional");
        var sqlite = Assert.IsType<SqliteIdempotencyStore>(store.TransactionalStoreFactory!(host.Services));
        Assert.Contains("CREATE TABLE IF NOT EXISTS orders_keys", sqlite.SchemaScript, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sqlite_InvalidOptionsFromConfiguration_FailStartNamingEachSetting()
    {
        var builder = NewHost(new()
        {
            ["Stores:Orders:ConnectionString"] = "",
            ["Stores:Orders:TableName"] = "orders keys",
            ["Stores:Orders:LockWaitLogInterval"] = "00:00:00",
        });
        builder.Services.AddReliableConsumer<int>("orders", Valid).UseSqliteIdempotency(builder.Configuration.GetSection("Stores:Orders")).WithHandler<NoOpHandler>();
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(Token));
        Assert.Contains("Stores:Orders:ConnectionString is empty: name the database file", error.Message, StringComparison.Ordinal);
        Assert.Contains("Stores:Orders:TableName is 'orders keys', not a plain identifier", error.Message, StringComparison.Ordinal);
        Assert.Contains("Stores:Orders:LockWaitLogInterval is 00:00:00: use a positive duration", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TwoConsumers_EachGetsItsOwnStore()
    {
        var builder = NewHost(new() { ["Stores:Payments:ConnectionString"] = $"Data Source={TempDatabase()}", ["Stores:Payments:TableName"] = "payments_keys" });
        builder.Services.AddReliableConsumer<int>("orders", Valid).UseSqliteIdempotency(TempDatabase(), o => o.TableName = "orders_keys").WithHandler<NoOpHandler>();
        builder.Services.AddReliableConsumer<int>("payments", Valid).WithHandler<NoOpHandler>().UseSqliteIdempotency(builder.Configuration.GetSection("Stores:Payments"));
        builder.Services.AddReliableConsumer<int>("audit", Valid).UseInMemoryIdempotency().WithHandler<NoOpHandler>();
        builder.Services.AddReliableConsumer<int>("metrics", Valid).WithHandler<NoOpHandler>();
        using var host = builder.Build();

        var stores = host.Services.GetRequiredService<IOptionsMonitor<IdempotencyStoreOptions>>();
        Assert.Contains("orders_keys", Assert.IsType<SqliteIdempotencyStore>(stores.Get("orders").StoreFactory!(host.Services)).SchemaScript, StringComparison.Ordinal);
        Assert.Contains("payments_keys", Assert.IsType<SqliteIdempotencyStore>(stores.Get("payments").StoreFactory!(host.Services)).SchemaScript, StringComparison.Ordinal);
        Assert.IsType<InMemoryIdempotencyStore>(stores.Get("audit").StoreFactory!(host.Services));
        Assert.False(stores.Get("metrics").HasStore, "a consumer without a Use...Idempotency call has no store");
    }

    [Fact]
    public async Task PostgreSql_ApplicationDataSource_IsUsedAndStaysOpenAfterTheStoreIsDisposed()
    {
        await using var dataSource = NpgsqlDataSource.Create(await postgres.CreateDatabaseAsync());
        var builder = NewHost();
        builder.Services.AddSingleton(dataSource);
        builder.Services.AddReliableConsumer<int>("orders", Valid).UsePostgreSqlIdempotency(o => o.TableName = "app_keys").WithHandler<NoOpHandler>();
        using var host = builder.Build();
        host.Services.GetRequiredService<IStartupValidator>().Validate(); // passes: no connection string, and a data source is registered

        var store = host.Services.GetRequiredService<IOptionsMonitor<IdempotencyStoreOptions>>().Get("orders");
        var postgresStore = Assert.IsType<PostgreSqlIdempotencyStore>(store.StoreFactory!(host.Services));
        await TakeAndCompleteAsync(postgresStore, "order-1");
        await postgresStore.DisposeAsync();

        // The store wrote through the application's data source, and left it open.
        await using var command = dataSource.CreateCommand("SELECT count(*) FROM public.app_keys WHERE key = 'order-1' AND status = 1");
        Assert.Equal(1L, await command.ExecuteScalarAsync(Token));
    }

    [Fact]
    public async Task PostgreSql_KeyedDataSourceFromConfiguration_IsUsedInTransactionalMode()
    {
        await using var dataSource = NpgsqlDataSource.Create(await postgres.CreateDatabaseAsync());
        var builder = NewHost(new() { ["Stores:Orders:DataSourceKey"] = "orders-db", ["Stores:Orders:Transactional"] = "true", ["Stores:Orders:TableName"] = "keyed_keys" });
        builder.Services.AddKeyedSingleton("orders-db", dataSource);
        builder.Services.AddReliableConsumer<int>("orders", Valid).WithHandler<NoOpHandler>().UsePostgreSqlIdempotency(builder.Configuration.GetSection("Stores:Orders"));
        using var host = builder.Build();
        host.Services.GetRequiredService<IStartupValidator>().Validate();

        var store = host.Services.GetRequiredService<IOptionsMonitor<IdempotencyStoreOptions>>().Get("orders");
        Assert.True(store.IsTransactional, "Transactional = true from configuration makes the store transactional");
        var postgresStore = Assert.IsType<PostgreSqlIdempotencyStore>(store.TransactionalStoreFactory!(host.Services));
        await TakeAndCompleteAsync(postgresStore, "order-2");
        await postgresStore.DisposeAsync();

        await using var command = dataSource.CreateCommand("SELECT count(*) FROM public.keyed_keys WHERE key = 'order-2'");
        Assert.Equal(1L, await command.ExecuteScalarAsync(Token));
    }

    [Theory]
    [InlineData(null, null, "Stores:Orders:ConnectionString is empty and no NpgsqlDataSource is registered: set ConnectionString")]
    [InlineData(null, "orders-db", "Stores:Orders:DataSourceKey is 'orders-db', but no NpgsqlDataSource is registered with that key")]
    [InlineData("Host=db;Database=orders", "orders-db", "Stores:Orders:ConnectionString and Stores:Orders:DataSourceKey are both set")]
    [InlineData("Host=db;No Such Keyword=1", null, "Stores:Orders:ConnectionString is not an Npgsql connection string")]
    public async Task PostgreSql_InvalidOptions_FailStartSayingWhatToFix(string? connectionString, string? dataSourceKey, string expected)
    {
        var builder = NewHost(new()
        {
            ["Stores:Orders:ConnectionString"] = connectionString,
            ["Stores:Orders:DataSourceKey"] = dataSourceKey,
            ["Stores:Orders:Schema"] = "Bad-Schema",
        });
        builder.Services.AddReliableConsumer<int>("orders", Valid).UsePostgreSqlIdempotency(builder.Configuration.GetSection("Stores:Orders")).WithHandler<NoOpHandler>();
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(Token));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.Contains("Stores:Orders:Schema is 'Bad-Schema', not a plain identifier", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Redis_ApplicationMultiplexer_IsUsedAndStaysOpenAfterTheStoreIsDisposed()
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(redis.Configuration);
        var prefix = $"app-{Guid.NewGuid():N}:";
        var builder = NewHost();
        builder.Services.AddSingleton<IConnectionMultiplexer>(connection);
        builder.Services.AddReliableConsumer<int>("orders", Valid).UseRedisIdempotency(o => o.KeyPrefix = prefix).WithHandler<NoOpHandler>();
        using var host = builder.Build();
        host.Services.GetRequiredService<IStartupValidator>().Validate();

        var store = host.Services.GetRequiredService<IOptionsMonitor<IdempotencyStoreOptions>>().Get("orders");
        var redisStore = Assert.IsType<RedisIdempotencyStore>(store.StoreFactory!(host.Services));
        await TakeAndCompleteAsync(redisStore, "order-1");
        await redisStore.DisposeAsync();

        Assert.True(connection.IsConnected, "the application's connection stays open after the store is disposed");
        Assert.True(await connection.GetDatabase().KeyExistsAsync(prefix + "order-1"), "the store wrote through the application's connection");
    }

    [Fact]
    public async Task Redis_KeyedMultiplexerFromConfiguration_IsUsed()
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(redis.Configuration);
        var prefix = $"keyed-{Guid.NewGuid():N}:";
        var builder = NewHost(new() { ["Stores:Orders:ConnectionMultiplexerKey"] = "cache", ["Stores:Orders:KeyPrefix"] = prefix, ["Stores:Orders:Retention"] = "01:00:00" });
        builder.Services.AddKeyedSingleton<IConnectionMultiplexer>("cache", connection);
        builder.Services.AddReliableConsumer<int>("orders", Valid).WithHandler<NoOpHandler>().UseRedisIdempotency(builder.Configuration.GetSection("Stores:Orders"));
        using var host = builder.Build();
        host.Services.GetRequiredService<IStartupValidator>().Validate();

        var redisStore = Assert.IsType<RedisIdempotencyStore>(host.Services.GetRequiredService<IOptionsMonitor<IdempotencyStoreOptions>>().Get("orders").StoreFactory!(host.Services));
        await TakeAndCompleteAsync(redisStore, "order-2");
        await redisStore.DisposeAsync();

        var ttl = await connection.GetDatabase().KeyTimeToLiveAsync(prefix + "order-2");
        Assert.True(ttl is { } left && left > TimeSpan.FromMinutes(50), $"the completed key expires after the configured retention of 1 hour; its time to live is {ttl}");
        Assert.True(connection.IsConnected, "the application's connection stays open");
    }

    [Theory]
    [InlineData("localhost:6379", "cache", "Stores:Orders:Configuration and Stores:Orders:ConnectionMultiplexerKey are both set")]
    [InlineData(null, null, "Stores:Orders:Configuration is empty and no IConnectionMultiplexer is registered")]
    [InlineData(null, "cache", "Stores:Orders:ConnectionMultiplexerKey is 'cache', but no IConnectionMultiplexer is registered with that key")]
    public async Task Redis_InvalidOptions_FailStartSayingWhatToFix(string? configuration, string? key, string expected)
    {
        var builder = NewHost(new()
        {
            ["Stores:Orders:Configuration"] = configuration,
            ["Stores:Orders:ConnectionMultiplexerKey"] = key,
            ["Stores:Orders:Retention"] = "-00:00:01",
        });
        builder.Services.AddReliableConsumer<int>("orders", Valid).UseRedisIdempotency(builder.Configuration.GetSection("Stores:Orders")).WithHandler<NoOpHandler>();
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(Token));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.Contains("Stores:Orders:Retention is -00:00:01: use a positive duration", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CodeConfiguredStore_InvalidOptions_NameTheConsumer()
    {
        var builder = NewHost();
        builder.Services.AddReliableConsumer<int>("orders", Valid).UseRedisIdempotency("localhost:6379", o => o.KeyPrefix = "").WithHandler<NoOpHandler>();
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(Token));
        Assert.Contains("The Redis idempotency store of consumer 'orders': KeyPrefix is empty", error.Message, StringComparison.Ordinal);
    }

    private static async Task TakeAndCompleteAsync(IIdempotencyStore store, string key)
    {
        Assert.Equal(IdempotencyBeginResult.Acquired, await store.TryBeginAsync(key, "owner", Lease, Token));
        Assert.Equal(IdempotencyLeaseStatus.Held, await store.CompleteAsync(key, "owner", Token));
    }

    private static HostApplicationBuilder NewHost(Dictionary<string, string?>? settings = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(settings ?? []);
        return builder;
    }

    private static void Valid(ReliableConsumerOptions o)
    {
        // Valid, and never reached: the hosts that pass validation are not started.
        o.BootstrapServers = "127.0.0.1:9";
        o.GroupId = "orders";
        o.Topics.Add("orders");
    }

    private static string TempDatabase() => Path.Combine(Path.GetTempPath(), $"kafka-reliable-{Guid.NewGuid():N}.db");

    private sealed class NoOpHandler : IMessageHandler<int>
    {
        public ValueTask HandleAsync(int message, MessageContext context, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }
}
