using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Kafka.Reliable.Idempotency.Redis;

/// <summary>Checks a consumer's Redis store options when the host starts, naming the setting to fix.</summary>
internal sealed class RedisIdempotencyOptionsValidator(IEnumerable<StoreOptionsSource<RedisIdempotencyOptions>> sources, IServiceProvider services) : IValidateOptions<RedisIdempotencyOptions>
{
    public ValidateOptionsResult Validate(string? name, RedisIdempotencyOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var source = StoreOptionsSource<RedisIdempotencyOptions>.Find(sources, name);
        if (source is null)
        {
            return ValidateOptionsResult.Skip;
        }

        string Setting(string property) => source.Setting("Redis", property);

        var errors = new ValidateOptionsResultBuilder();
        var key = string.IsNullOrWhiteSpace(options.ConnectionMultiplexerKey) ? null : options.ConnectionMultiplexerKey;
        if (!string.IsNullOrWhiteSpace(options.Configuration))
        {
            if (key is not null)
            {
                errors.AddError($"{Setting("Configuration")} and {Setting("ConnectionMultiplexerKey")} are both set: set Configuration for a connection of the store's own, or ConnectionMultiplexerKey for the application's, not both.");
            }
            else if (!TryParse(options.Configuration, out var reason))
            {
                errors.AddError($"{Setting("Configuration")} is not a StackExchange.Redis configuration string ({reason}): use for example 'localhost:6379' or 'redis1:6379,redis2:6379,password=...'.");
            }
        }
        else if (!IsRegistered(key))
        {
            errors.AddError(key is null
                ? $"{Setting("Configuration")} is empty and no IConnectionMultiplexer is registered: set Configuration (for example 'localhost:6379'), or register the application's connection with AddSingleton<IConnectionMultiplexer>(...)."
                : $"{Setting("ConnectionMultiplexerKey")} is '{key}', but no IConnectionMultiplexer is registered with that key: register it with AddKeyedSingleton<IConnectionMultiplexer>(\"{key}\", ...), or set Configuration instead.");
        }

        if (options.Retention <= TimeSpan.Zero)
        {
            errors.AddError($"{Setting("Retention")} is {options.Retention:c}: use a positive duration, for example 7.00:00:00 (7 days).");
        }

        if (string.IsNullOrEmpty(options.KeyPrefix))
        {
            errors.AddError($"{Setting("KeyPrefix")} is empty: use a prefix that keeps the store's keys apart from the application's, for example 'kafka-reliable:idempotency:'.");
        }

        if (options.Database < -1)
        {
            errors.AddError($"{Setting("Database")} is {options.Database}: use -1 for the connection's default database, or a database number of 0 or more.");
        }

        return errors.Build();
    }

    private static bool TryParse(string configuration, out string reason)
    {
        try
        {
            _ = ConfigurationOptions.Parse(configuration);
            reason = string.Empty;
            return true;
        }
        catch (ArgumentException ex)
        {
            reason = ex.Message;
            return false;
        }
    }

    private bool IsRegistered(string? key) => ApplicationServices.IsRegistered<IConnectionMultiplexer>(services, key);
}
