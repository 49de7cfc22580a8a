using System.Diagnostics.CodeAnalysis;
using Confluent.Kafka;

namespace Kafka.Reliable.Hosting;

/// <summary>
/// Loads librdkafka through Confluent.Kafka before the first client is built, so that a failure to load it is reported as
/// what it is, not as a rejection of the user's Kafka settings; and keeps what Confluent.Kafka needs for that in trimmed
/// applications.
/// </summary>
/// <remarks>
/// Confluent.Kafka binds librdkafka by reflection: <c>Librdkafka.SetDelegates</c> reads its P/Invoke classes with
/// <c>GetRuntimeMethods()</c> and picks each function by name. Nothing calls those methods directly, so the trimmer removes
/// them and the first client then fails with "Sequence contains no matching element". The dependencies below keep the three
/// classes it may choose from (the default, the CentOS 8 and the Alpine build) wherever this method is kept.
/// </remarks>
internal static class KafkaNativeLibrary
{
    private const string ConfluentKafka = "Confluent.Kafka";
    private const DynamicallyAccessedMemberTypes Methods = DynamicallyAccessedMemberTypes.PublicMethods | DynamicallyAccessedMemberTypes.NonPublicMethods;

    /// <summary>Loads librdkafka, once per process; later calls return at once.</summary>
    /// <exception cref="InvalidOperationException">Confluent.Kafka could not load librdkafka; the inner exception says why.</exception>
    [DynamicDependency(Methods, "Confluent.Kafka.Impl.NativeMethods.NativeMethods", ConfluentKafka)]
    [DynamicDependency(Methods, "Confluent.Kafka.Impl.NativeMethods.NativeMethods_Centos8", ConfluentKafka)]
    [DynamicDependency(Methods, "Confluent.Kafka.Impl.NativeMethods.NativeMethods_Alpine", ConfluentKafka)]
    public static void EnsureLoaded()
    {
        try
        {
            Library.Load();
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            throw new InvalidOperationException(
                $"Confluent.Kafka could not load its native library librdkafka ({ex.GetType().Name}: {ex.Message}). This is not a problem with the consumer's settings: " +
                "check that the librdkafka.redist package's native assets for this platform are in the application's output, and, in a trimmed " +
                "or native AOT application, that nothing removes Confluent.Kafka's P/Invoke classes (Confluent.Kafka.Impl.NativeMethods).",
                ex);
        }
    }
}
