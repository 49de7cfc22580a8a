using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Kafka.Reliable.Tests.Hosting;

/// <summary>The health check's registration: AddCheck's parameters, options bound from configuration and validated at start.</summary>
public sealed class HealthCheckRegistrationTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public void AddReliableConsumer_NameFailureStatusTagsTimeout_AreOnTheRegistration()
    {
        var services = new ServiceCollection();
        services.AddHealthChecks()
            .AddReliableConsumer("Orders", name: "orders-ready", failureStatus: HealthStatus.Degraded, tags: ["ready"], timeout: TimeSpan.FromSeconds(3))
            .AddReliableConsumer("Payments");

        using var provider = services.BuildServiceProvider();
        var registrations = provider.GetRequiredService<IOptions<HealthCheckServiceOptions>>().Value.Registrations.ToDictionary(r => r.Name);

        var orders = registrations["orders-ready"];
        Assert.Equal(HealthStatus.Degraded, orders.FailureStatus);
        Assert.Equal(["ready"], orders.Tags);
        Assert.Equal(TimeSpan.FromSeconds(3), orders.Timeout);

        var payments = registrations["kafka-reliable:Payments"];
        Assert.Equal(HealthStatus.Unhealthy, payments.FailureStatus);
        Assert.Empty(payments.Tags);
        Assert.Equal(Timeout.InfiniteTimeSpan, payments.Timeout);
    }

    [Fact]
    public async Task Check_ConsumerUnhealthy_IsReportedWithTheRegistrationsFailureStatus()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddHealthChecks().AddReliableConsumer("orders", failureStatus: HealthStatus.Degraded);

        // The consumer's state as AddReliableConsumer("orders", ...) registers it, before its runner started: not running.
        services.AddKeyedSingleton<Kafka.Reliable.Hosting.ConsumerState>("orders");
        using var provider = services.BuildServiceProvider();
        var report = await provider.GetRequiredService<HealthCheckService>().CheckHealthAsync(Token);

        var entry = Assert.Single(report.Entries).Value;
        Assert.True(entry.Status == HealthStatus.Degraded, $"expected the failure status Degraded; was {entry.Status}: {entry.Description}");
        Assert.Contains("Consumer 'orders' is not running", entry.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Options_BoundFromConfiguration_ThenChangedInCode_PerCheck()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["HealthChecks:Orders:MaxLag"] = "7",
            ["HealthChecks:Orders:MaxRecordAge"] = "00:00:30",
            ["HealthChecks:Orders:StallTimeout"] = "00:02:00",
        }).Build();
        var services = new ServiceCollection();
        services.AddKeyedSingleton<Kafka.Reliable.Hosting.ConsumerState>("Orders");
        services.AddHealthChecks()
            .AddReliableConsumer("Orders", configuration.GetSection("HealthChecks:Orders"))
            .AddReliableConsumer("Orders", o => o.StallTimeout = TimeSpan.FromMinutes(1), name: "orders-live", configuration: configuration.GetSection("HealthChecks:Orders"));

        using var provider = services.BuildServiceProvider();
        var monitor = provider.GetRequiredService<IOptionsMonitor<ReliableConsumerHealthOptions>>();
        var ready = monitor.Get("kafka-reliable:Orders");
        Assert.Equal((7L, TimeSpan.FromSeconds(30), TimeSpan.FromMinutes(2)), (ready.MaxLag, ready.MaxRecordAge, ready.StallTimeout));
        var live = monitor.Get("orders-live");
        Assert.Equal((7L, TimeSpan.FromSeconds(30), TimeSpan.FromMinutes(1)), (live.MaxLag, live.MaxRecordAge, live.StallTimeout));
    }

    [Fact]
    public async Task Start_InvalidOptionsFromConfiguration_FailsNamingEachSetting()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["HealthChecks:Orders:MaxLag"] = "-1",
            ["HealthChecks:Orders:MaxRecordAge"] = "00:00:00",
            ["HealthChecks:Orders:StallTimeout"] = "-00:01:00",
        });
        builder.Services.AddHealthChecks().AddReliableConsumer("Orders", builder.Configuration.GetSection("HealthChecks:Orders"));
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(Token));
        Assert.Contains("HealthChecks:Orders:MaxLag is -1: use a number of records of 0 or more", error.Message, StringComparison.Ordinal);
        Assert.Contains("HealthChecks:Orders:MaxRecordAge is 00:00:00: use a positive duration", error.Message, StringComparison.Ordinal);
        Assert.Contains("HealthChecks:Orders:StallTimeout is -00:01:00: use a positive duration", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_NegativeMaxLagInCode_FailsNamingTheCheck()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddHealthChecks().AddReliableConsumer("Orders", o => o.MaxLag = -5);
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(Token));
        Assert.Contains("Health check 'kafka-reliable:Orders': MaxLag is -5: use a number of records of 0 or more, for example 10000", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_CheckOfAConsumerThatDoesNotExist_FailsNamingIt()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddHealthChecks().AddReliableConsumer("Oders");
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(Token));
        Assert.Contains("Health check 'kafka-reliable:Oders' checks a reliable consumer named 'Oders', but no consumer has that name", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_ValidOptions_Starts()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddHealthChecks().AddReliableConsumer("Orders", o => o.MaxLag = 0);

        // What AddReliableConsumer("Orders", ...) registers for its health check, without starting a consumer.
        builder.Services.AddKeyedSingleton<Kafka.Reliable.Hosting.ConsumerState>("Orders");
        using var host = builder.Build();

        await host.StartAsync(Token);
        await host.StopAsync(Token);
    }
}
