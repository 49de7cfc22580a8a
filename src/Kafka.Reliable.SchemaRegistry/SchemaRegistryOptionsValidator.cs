using Confluent.SchemaRegistry;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Kafka.Reliable.SchemaRegistry;

/// <summary>Where one consumer's registry options come from: the consumer's name, and the configuration section they were bound from.</summary>
internal sealed record SchemaRegistrySource(string ConsumerName, string? ConfigurationPath)
{
    /// <summary>Names a setting the way the user wrote it: its configuration path, or the consumer it belongs to.</summary>
    public string Setting(string property) => ConfigurationPath is { } path
        ? $"{path}:{property}"
        : $"The Schema Registry of consumer '{ConsumerName}': {property}";
}

/// <summary>Checks a consumer's registry options when the host starts, naming the setting to fix.</summary>
internal sealed class SchemaRegistryOptionsValidator(IEnumerable<SchemaRegistrySource> sources, IServiceProvider services) : IValidateOptions<SchemaRegistryOptions>
{
    public ValidateOptionsResult Validate(string? name, SchemaRegistryOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var source = sources.LastOrDefault(s => string.Equals(s.ConsumerName, name, StringComparison.Ordinal));
        if (source is null)
        {
            return ValidateOptionsResult.Skip;
        }

        var errors = new ValidateOptionsResultBuilder();
        if (string.IsNullOrWhiteSpace(options.Url))
        {
            if (!IsRegistered(source.ConsumerName) && !IsRegistered(key: null))
            {
                errors.AddError(
                    $"{source.Setting("Url")} is empty and no ISchemaRegistryClient is registered: set Url (for example 'http://schema-registry:8081'), " +
                    $"or register the application's client with AddSingleton<ISchemaRegistryClient>(...) (or AddKeyedSingleton<ISchemaRegistryClient>(\"{source.ConsumerName}\", ...)).");
            }
            else if (!string.IsNullOrEmpty(options.BasicAuthUserInfo))
            {
                errors.AddError($"{source.Setting("BasicAuthUserInfo")} is set but Url is empty: the credentials apply to the consumer's own client. Set Url too, or configure the application's ISchemaRegistryClient with them.");
            }
        }
        else
        {
            foreach (var url in SchemaRegistryConnection.SplitUrls(options.Url).DefaultIfEmpty(string.Empty))
            {
                if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
                {
                    errors.AddError($"{source.Setting("Url")} has '{Redacted(url)}', which is not an absolute http or https URL: use for example 'http://schema-registry:8081', several separated by commas.");
                }
                else if (uri.UserInfo.Length > 0)
                {
                    errors.AddError($"{source.Setting("Url")} has credentials in a URL ('{Redacted(url)}'): remove them from the URL and set BasicAuthUserInfo ('user:password'), which is never logged.");
                }
            }
        }

        if (!string.IsNullOrEmpty(options.BasicAuthUserInfo) && !options.BasicAuthUserInfo.Contains(':', StringComparison.Ordinal))
        {
            errors.AddError($"{source.Setting("BasicAuthUserInfo")} is not 'user:password' (it has no ':'): set it to the user and the password separated by a colon.");
        }

        if (options.RequestTimeout <= TimeSpan.Zero || options.RequestTimeout > SchemaRegistryConstants.MaxRequestTimeout)
        {
            errors.AddError($"{source.Setting("RequestTimeout")} is {options.RequestTimeout:c}: use a positive duration of at most {SchemaRegistryConstants.MaxRequestTimeout:c}, for example 00:00:30. A record waits for the registry with the retry policy, not with a longer request.");
        }

        if (options.MaxCachedSchemas < 1)
        {
            errors.AddError($"{source.Setting("MaxCachedSchemas")} is {options.MaxCachedSchemas}: use 1 or more, for example {SchemaRegistryConstants.DefaultMaxCachedSchemas}.");
        }

        if (options.LatestCacheTtl is { } ttl && (ttl < TimeSpan.FromSeconds(1) || ttl > TimeSpan.FromSeconds(int.MaxValue)))
        {
            errors.AddError($"{source.Setting("LatestCacheTtl")} is {ttl:c}: use at least 00:00:01 (the registry client counts seconds), or leave it unset for no expiry.");
        }

        if (options.MaxRetries is < 0 or > SchemaRegistryConstants.MaxMaxRetries)
        {
            errors.AddError($"{source.Setting("MaxRetries")} is {options.MaxRetries}: use 0 to {SchemaRegistryConstants.MaxMaxRetries}; the consumer's retry policy retries the record after that.");
        }

        return errors.Build();
    }

    // A URL that does not parse may still hold a password: show only what comes before any '@'.
    private static string Redacted(string url) => url.LastIndexOf('@') is var at and >= 0
        ? (url.IndexOf("://", StringComparison.Ordinal) is var scheme and >= 0 && scheme < at ? url[..(scheme + 3)] + "***" + url[at..] : "***" + url[at..])
        : url;

    private bool IsRegistered(string? key) => key is null
        ? services.GetService<IServiceProviderIsService>()?.IsService(typeof(ISchemaRegistryClient)) ?? true
        : services.GetService<IServiceProviderIsKeyedService>()?.IsKeyedService(typeof(ISchemaRegistryClient), key) ?? true;
}
