using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Kafka.Reliable.Idempotency.PostgreSql;

/// <summary>Checks a consumer's PostgreSQL store options when the host starts, naming the setting to fix.</summary>
internal sealed class PostgreSqlIdempotencyOptionsValidator(IEnumerable<StoreOptionsSource<PostgreSqlIdempotencyOptions>> sources, IServiceProvider services) : IValidateOptions<PostgreSqlIdempotencyOptions>
{
    public ValidateOptionsResult Validate(string? name, PostgreSqlIdempotencyOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var source = StoreOptionsSource<PostgreSqlIdempotencyOptions>.Find(sources, name);
        if (source is null)
        {
            return ValidateOptionsResult.Skip;
        }

        string Setting(string property) => source.Setting("PostgreSQL", property);

        var errors = new ValidateOptionsResultBuilder();
        var key = string.IsNullOrWhiteSpace(options.DataSourceKey) ? null : options.DataSourceKey;
        if (!string.IsNullOrWhiteSpace(options.ConnectionString))
        {
            if (key is not null)
            {
                errors.AddError($"{Setting("ConnectionString")} and {Setting("DataSourceKey")} are both set: set ConnectionString for a data source of the store's own, or DataSourceKey for the application's, not both.");
            }
            else if (!TryParse(options.ConnectionString, out var reason))
            {
                errors.AddError($"{Setting("ConnectionString")} is not an Npgsql connection string ({reason}): use for example 'Host=db;Username=orders;Password=...;Database=orders'.");
            }
        }
        else if (!IsRegistered(key))
        {
            errors.AddError(key is null
                ? $"{Setting("ConnectionString")} is empty and no NpgsqlDataSource is registered: set ConnectionString (for example 'Host=db;Username=orders;Password=...;Database=orders'), or register the application's data source with AddNpgsqlDataSource(...)."
                : $"{Setting("DataSourceKey")} is '{key}', but no NpgsqlDataSource is registered with that key: register it with AddNpgsqlDataSource(connectionString, serviceKey: \"{key}\"), or set ConnectionString instead.");
        }

        if (options.Schema is null || !PostgreSqlIdempotencyStore.Identifier().IsMatch(options.Schema))
        {
            errors.AddError($"{Setting("Schema")} is '{options.Schema}', not a plain identifier: use lower-case letters, digits and '_', starting with a letter, for example 'public'.");
        }

        if (options.TableName is null || !PostgreSqlIdempotencyStore.Identifier().IsMatch(options.TableName))
        {
            errors.AddError($"{Setting("TableName")} is '{options.TableName}', not a plain identifier: use lower-case letters, digits and '_', starting with a letter, for example 'kafka_reliable_idempotency'.");
        }

        return errors.Build();
    }

    private static bool TryParse(string connectionString, out string reason)
    {
        try
        {
            _ = new NpgsqlConnectionStringBuilder(connectionString);
            reason = string.Empty;
            return true;
        }
        catch (ArgumentException ex)
        {
            reason = ex.Message;
            return false;
        }
    }

    private bool IsRegistered(string? key) => ApplicationServices.IsRegistered<NpgsqlDataSource>(services, key);
}
