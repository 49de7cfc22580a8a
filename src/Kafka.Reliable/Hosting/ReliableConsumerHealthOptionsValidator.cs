using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Kafka.Reliable.Hosting;

/// <summary>Where the options of one health check come from: its name, the consumer it checks, and the configuration section they were bound from.</summary>
internal sealed record ReliableConsumerHealthCheckSource(string CheckName, string ConsumerName, string? ConfigurationPath);

/// <summary>Checks a reliable consumer's health-check thresholds when the host starts, naming the setting to fix.</summary>
internal sealed class ReliableConsumerHealthOptionsValidator(IEnumerable<ReliableConsumerHealthCheckSource> sources, IServiceProviderIsKeyedService? services = null)
    : IValidateOptions<ReliableConsumerHealthOptions>
{
    public ValidateOptionsResult Validate(string? name, ReliableConsumerHealthOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var source = sources.LastOrDefault(s => string.Equals(s.CheckName, name, StringComparison.Ordinal));
        if (source is null)
        {
            return ValidateOptionsResult.Skip;
        }

        string Setting(string property) => source.ConfigurationPath is { } path
            ? $"{path}:{property}"
            : $"Health check '{source.CheckName}': {property}";

        var errors = new ValidateOptionsResultBuilder();
        if (services is not null && !services.IsKeyedService(typeof(ConsumerState), source.ConsumerName))
        {
            // A check of a consumer that does not exist would report Unhealthy for ever: under a liveness probe, a restart loop.
            errors.AddError($"Health check '{source.CheckName}' checks a reliable consumer named '{source.ConsumerName}', but no consumer has that name: use the name given to AddReliableConsumer.");
        }

        if (options.MaxLag < 0)
        {
            errors.AddError($"{Setting("MaxLag")} is {options.MaxLag.ToString(CultureInfo.InvariantCulture)}: use a number of records of 0 or more, for example 10000.");
        }

        if (options.MaxRecordAge <= TimeSpan.Zero)
        {
            errors.AddError($"{Setting("MaxRecordAge")} is {options.MaxRecordAge:c}: use a positive duration, for example 00:05:00.");
        }

        if (options.StallTimeout <= TimeSpan.Zero)
        {
            errors.AddError($"{Setting("StallTimeout")} is {options.StallTimeout:c}: use a positive duration longer than your slowest handler with its retries, for example 00:10:00.");
        }

        if (options.MaxParkedAge <= TimeSpan.Zero)
        {
            errors.AddError($"{Setting("MaxParkedAge")} is {options.MaxParkedAge:c}: use a positive duration longer than your retry tiers' delays together, for example 01:00:00.");
        }

        return errors.Build();
    }
}
