using Microsoft.Extensions.Options;

namespace Kafka.Reliable.Idempotency.Sqlite;

/// <summary>Where the SQLite store options of one consumer come from: its name, and the configuration section they were bound from.</summary>
internal sealed record SqliteIdempotencyOptionsSource(string ConsumerName, string? ConfigurationPath);

/// <summary>Checks a consumer's SQLite store options when the host starts, naming the setting to fix.</summary>
internal sealed class SqliteIdempotencyOptionsValidator(IEnumerable<SqliteIdempotencyOptionsSource> sources) : IValidateOptions<SqliteIdempotencyOptions>
{
    public ValidateOptionsResult Validate(string? name, SqliteIdempotencyOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var source = sources.LastOrDefault(s => string.Equals(s.ConsumerName, name, StringComparison.Ordinal));
        if (source is null)
        {
            return ValidateOptionsResult.Skip;
        }

        string Setting(string property) => source.ConfigurationPath is { } path
            ? $"{path}:{property}"
            : $"The SQLite idempotency store of consumer '{source.ConsumerName}': {property}";

        var errors = new ValidateOptionsResultBuilder();
        if (string.IsNullOrWhiteSpace(options.ConnectionString))
        {
            errors.AddError($"{Setting("ConnectionString")} is empty: name the database file, for example 'Data Source=/var/lib/orders/idempotency.db', or call UseSqliteIdempotency(path).");
        }

        if (options.TableName is null || !SqliteIdempotencyStore.Identifier().IsMatch(options.TableName))
        {
            errors.AddError($"{Setting("TableName")} is '{options.TableName}', not a plain identifier: use letters, digits and '_', starting with a letter, for example 'kafka_reliable_idempotency'.");
        }

        if (options.LockWaitLogInterval <= TimeSpan.Zero)
        {
            errors.AddError($"{Setting("LockWaitLogInterval")} is {options.LockWaitLogInterval:c}: use a positive duration, for example 00:00:10.");
        }

        return errors.Build();
    }
}
