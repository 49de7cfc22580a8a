using System.Net;
using Confluent.SchemaRegistry;
using Google.Protobuf;

namespace Kafka.Reliable.SchemaRegistry;

/// <summary>
/// Maps what Confluent's client and serdes throw to the consumer's semantics: the registry's failure is a
/// <see cref="DependencyUnavailableException"/> (the record waits), the record's failure a <see cref="SchemaPayloadException"/>
/// (the record is dead-lettered with its schema id).
/// </summary>
internal static class RegistryFailures
{
    /// <summary>Gets the exception to throw instead of <paramref name="exception"/>, or null to let it through as it is (it is poison then too).</summary>
    public static Exception? Translate(Exception exception, SchemaReference schema, SchemaRegistryConnection registry, string format)
    {
        switch (exception)
        {
            case SchemaPayloadException or DependencyUnavailableException:
                return null;
            case AggregateException { InnerExceptions.Count: 1 } aggregate:
                return Translate(aggregate.InnerExceptions[0], schema, registry, format) ?? aggregate.InnerExceptions[0];
            // A response of the registry: before HttpRequestException, which it derives from.
            case SchemaRegistryException answer when answer.Status == HttpStatusCode.NotFound:
                return new SchemaPayloadException(
                    SchemaPayloadFailure.UnknownSchema, schema.ToString(),
                    $"{registry.Description} has no schema {schema} (HTTP 404, error code {answer.ErrorCode}): the {format} value was written with a " +
                    "schema that was deleted, or registered in another registry.",
                    answer);
            case SchemaRegistryException answer when IsRegistryProblem(answer.Status):
                return Unavailable(registry, schema, $"HTTP {(int)answer.Status}, error code {answer.ErrorCode}", answer);
            case SchemaRegistryException answer:
                return new SchemaPayloadException(
                    SchemaPayloadFailure.UnknownSchema, schema.ToString(),
                    $"{registry.Description} refused schema {schema} (HTTP {(int)answer.Status}, error code {answer.ErrorCode}): {answer.Message}",
                    answer);
            case HttpRequestException or OperationCanceledException or TimeoutException:
                return Unavailable(registry, schema, exception.GetType().Name, exception);
            case Avro.AvroException or InvalidDataException or InvalidProtocolBufferException or Newtonsoft.Json.JsonException
                or EndOfStreamException or IndexOutOfRangeException or ArgumentOutOfRangeException or OverflowException or FormatException or InvalidCastException:
                return new SchemaPayloadException(
                    SchemaPayloadFailure.SchemaMismatch, schema.ToString(),
                    $"The {format} value does not match its writer schema {schema}, or the reader cannot resolve that schema: {exception.Message}",
                    exception);
            default:
                return null;
        }
    }

    /// <summary>Gets whether a status says the registry cannot answer now (down, overloaded, timed out, refusing our credentials), not that the schema is wrong.</summary>
    public static bool IsRegistryProblem(HttpStatusCode status) =>
        (int)status >= 500 || status is HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests
            or HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden or HttpStatusCode.ProxyAuthenticationRequired;

    private static DependencyUnavailableException Unavailable(SchemaRegistryConnection registry, SchemaReference schema, string why, Exception inner) =>
        new($"{registry.Description} did not answer for schema {schema} ({why}): the record waits and is tried again.", inner);
}
