using Confluent.SchemaRegistry;
using Kafka.Reliable.SchemaRegistry.Tests.Avro;
using Kafka.Reliable.SchemaRegistry.Tests.Protos;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Kafka.Reliable.SchemaRegistry.Tests;

public sealed class SchemaRegistryOptionsTests
{
    [Fact]
    public void BoundFromConfiguration_ReadsEverySetting()
    {
        using var services = Build(new()
        {
            ["Kafka:Orders:SchemaRegistry:Url"] = "http://a:8081, https://b:8081",
            ["Kafka:Orders:SchemaRegistry:BasicAuthUserInfo"] = "user:pw",
            ["Kafka:Orders:SchemaRegistry:RequestTimeout"] = "00:00:05",
            ["Kafka:Orders:SchemaRegistry:MaxCachedSchemas"] = "10",
            ["Kafka:Orders:SchemaRegistry:LatestCacheTtl"] = "00:05:00",
            ["Kafka:Orders:SchemaRegistry:MaxRetries"] = "3",
        });

        var options = services.GetRequiredService<IOptionsMonitor<SchemaRegistryOptions>>().Get("Orders");

        Assert.Equal(("http://a:8081, https://b:8081", "user:pw", TimeSpan.FromSeconds(5), 10, TimeSpan.FromMinutes(5), 3),
            (options.Url, options.BasicAuthUserInfo, options.RequestTimeout, options.MaxCachedSchemas, options.LatestCacheTtl, options.MaxRetries));
        using var connection = services.GetRequiredKeyedService<SchemaRegistryConnection>("Orders");
        Assert.IsType<CachedSchemaRegistryClient>(connection.Client);
        Assert.Equal("The Schema Registry at http://a:8081, https://b:8081", connection.Description);
    }

    [Theory]
    [InlineData("Url", "registry:8081", "Kafka:Orders:SchemaRegistry:Url has 'registry:8081', which is not an absolute http or https URL")]
    [InlineData("Url", "http://a:8081,ftp://b", "Kafka:Orders:SchemaRegistry:Url has 'ftp://b'")]
    [InlineData("Url", "http://user:hunter2@a:8081", "set BasicAuthUserInfo")]
    [InlineData("RequestTimeout", "00:00:00", "Kafka:Orders:SchemaRegistry:RequestTimeout is 00:00:00")]
    [InlineData("RequestTimeout", "01:00:00", "at most 00:05:00")]
    [InlineData("MaxCachedSchemas", "0", "Kafka:Orders:SchemaRegistry:MaxCachedSchemas is 0")]
    [InlineData("MaxRetries", "11", "Kafka:Orders:SchemaRegistry:MaxRetries is 11")]
    [InlineData("LatestCacheTtl", "00:00:00.5000000", "Kafka:Orders:SchemaRegistry:LatestCacheTtl")]
    [InlineData("BasicAuthUserInfo", "no-colon", "Kafka:Orders:SchemaRegistry:BasicAuthUserInfo is not 'user:password'")]
    public void InvalidSetting_FailsValidationNamingIt(string setting, string value, string expected)
    {
        var settings = new Dictionary<string, string?> { ["Kafka:Orders:SchemaRegistry:Url"] = "http://registry:8081" };
        settings[$"Kafka:Orders:SchemaRegistry:{setting}"] = value;
        using var services = Build(settings);

        var ex = Assert.Throws<OptionsValidationException>(() => services.GetRequiredService<IOptionsMonitor<SchemaRegistryOptions>>().Get("Orders"));

        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NoUrlAndNoClient_FailsValidationSayingWhatToDo()
    {
        var services = new ServiceCollection();
        services.AddReliableConsumer<Order>("orders", o => o.Topics.Add("t")).WithAvroDeserializer();
        using var provider = services.BuildServiceProvider();

        var ex = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptionsMonitor<SchemaRegistryOptions>>().Get("orders"));

        Assert.Contains("The Schema Registry of consumer 'orders': Url is empty and no ISchemaRegistryClient is registered", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NoUrl_UsesTheApplicationsClientKeyedByConsumerName_AndNeverDisposesIt()
    {
        var services = new ServiceCollection();
        var keyed = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = "http://keyed:8081" });
        var unkeyed = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = "http://unkeyed:8081" });
        services.AddKeyedSingleton<ISchemaRegistryClient>("orders", keyed);
        services.AddSingleton<ISchemaRegistryClient>(unkeyed);
        services.AddReliableConsumer<OrderPlaced>("orders", o => o.Topics.Add("t")).UseSchemaRegistry(o => o.MaxRetries = 2).WithProtobufDeserializer();
        services.AddReliableConsumer<OrderPlaced>("others", o => o.Topics.Add("t")).WithProtobufDeserializer();
        using var provider = services.BuildServiceProvider();

        Assert.Same(keyed, provider.GetRequiredKeyedService<SchemaRegistryConnection>("orders").Client);
        Assert.Same(unkeyed, provider.GetRequiredKeyedService<SchemaRegistryConnection>("others").Client);
    }

    [Fact]
    public void WithAvroDeserializer_OfATypeAvroCannotRead_Throws()
    {
        var builder = new ServiceCollection().AddReliableConsumer<Uri>("uris", o => o.Topics.Add("t"));

        var ex = Assert.Throws<ArgumentException>(() => builder.WithAvroDeserializer());

        Assert.Contains("cannot read Avro into Uri", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Extensions_WorkBeforeAndAfterATranslator()
    {
        var services = new ServiceCollection();
        IReliableConsumerBuilder<Order, string> translated = services.AddReliableConsumer<Order>("a", o => o.Topics.Add("t"))
            .UseSchemaRegistry(o => o.Url = "http://registry:8081")
            .WithTranslator<OrderIds, string>()
            .WithAvroDeserializer()
            .UseSchemaRegistry(o => o.MaxRetries = 0);

        Assert.Equal("a", translated.Name);
    }

    private static ServiceProvider Build(Dictionary<string, string?> settings)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var services = new ServiceCollection();
        services.AddReliableConsumer<Order>(configuration.GetSection("Kafka:Orders"))
            .UseSchemaRegistry(configuration.GetSection("Kafka:Orders:SchemaRegistry"))
            .WithAvroDeserializer();
        return services.BuildServiceProvider();
    }

    public sealed class OrderIds : IMessageTranslator<Order, string>
    {
        public string Translate(Order message, MessageContext context) => message.Id;
    }
}
