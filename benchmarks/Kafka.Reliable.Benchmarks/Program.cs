using BenchmarkDotNet.Running;
using Kafka.Reliable.Benchmarks;

// `throughput` runs the end-to-end harness on the embedded broker; anything else goes to BenchmarkDotNet.
if (args.Length > 0 && args[0] == "throughput")
{
    return await ThroughputHarness.RunAsync(args[1..]);
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
