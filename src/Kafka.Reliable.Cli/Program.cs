using Kafka.Reliable.Cli;

using var cancel = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cancel.Cancel();
};

return await KafkaReliableCli.RunAsync(args, Console.Out, Console.Error, cancel.Token, interactive: !Console.IsOutputRedirected);
