using Microsoft.Extensions.Options;

namespace Kafka.Reliable.Idempotency.Sqlite;

/// <summary>Checks a consumer's SQLite store options when the host starts, naming the setting to fix.</summary>
internal sealed class SqliteIdempotencyOptionsValidator(IEnumerable<StoreOptionsSource<SqliteIdempotencyOptions>> sources) : IValidateOptions<SqliteIdempotencyOptions>
{
    public ValidateOptionsResult Validate(string? name, SqliteIdempotencyOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var source = StoreOptionsSource<SqliteIdempotencyOptions>.Find(sources, name);
        if (source is null)
        {
            return ValidateOptionsResult.Skip;
        }

        string Setting(string property) => source.Setting("SQLite", property);

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
