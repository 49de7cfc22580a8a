[assembly: AssemblyFixture(typeof(Kafka.Reliable.Idempotency.Tests.Infrastructure.PostgresServer))]
[assembly: AssemblyFixture(typeof(Kafka.Reliable.Idempotency.Tests.Infrastructure.RedisServer))]
[assembly: AssemblyFixture(typeof(Kafka.Reliable.Idempotency.Tests.Infrastructure.BrokerFixture))]
