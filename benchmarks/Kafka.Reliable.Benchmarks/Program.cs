using BenchmarkDotNet.Running;
using Kafka.Reliable.Benchmarks;

// `throughput`, `concurrency`, `stores` and `batch-db` run the end-to-end harnesses on the embedded broker; anything else goes to BenchmarkDotNet.
if (args.Length > 0 && args[0] == "throughput")
{
    return await ThroughputHarness.RunAsync(args[1..]);
}

if (args.Length > 0 && args[0] == "concurrency")
{
    return await ConcurrencyHarness.RunAsync(args[1..]);
}

if (args.Length > 0 && args[0] == "stores")
{
    return await StoresHarness.RunAsync(args[1..]);
}

if (args.Length > 0 && args[0] == "batch-db")
{
    return await BatchDatabaseHarness.RunAsync(args[1..]);
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
