using Confluent.Kafka;
using Microsoft.Extensions.Logging;

namespace Kafka.Reliable.Diagnostics;

/// <summary>
/// Sends what librdkafka logs for a client the library builds (the consumer, the dead-letter producer, the transactional
/// producers, the dead-letter replay's clients) to the owner's logger as event 502, naming the client, instead of
/// librdkafka's default: stderr.
/// </summary>
internal static class ClientLogs
{
    public static void Forward(ILogger logger, string consumer, LogMessage message)
    {
        var level = ToLogLevel(message.Level);
        if (logger.IsEnabled(level))
        {
            Log.ClientLog(logger, level, consumer, message.Name, message.Facility, message.Message);
        }
    }

    private static LogLevel ToLogLevel(SyslogLevel level) => level switch
    {
        <= SyslogLevel.Error => LogLevel.Error,
        SyslogLevel.Warning => LogLevel.Warning,
        SyslogLevel.Notice or SyslogLevel.Info => LogLevel.Information,
        _ => LogLevel.Debug,
    };
}
