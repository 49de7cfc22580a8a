using System.Diagnostics.CodeAnalysis;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Kafka.Reliable;

/// <summary>
/// Deserializes JSON payloads with System.Text.Json, reading the record's bytes in place (no copy, no string).
/// Use a source-generated <see cref="JsonTypeInfo{T}"/> for trimmed and native AOT applications.
/// </summary>
/// <typeparam name="TMessage">The message type.</typeparam>
/// <remarks>
/// A null record value, an empty payload and the JSON literal <c>null</c> are rejected with a message that says so. So is a
/// payload that names a property twice (<c>{"Id":"a","Id":"b"}</c>): which value was meant is ambiguous, and taking the last
/// one silently would apply a message its producer may not have sent. Pass <c>allowDuplicateProperties: true</c> to accept
/// such payloads (the last value wins).
/// </remarks>
public sealed class JsonMessageDeserializer<TMessage> : IMessageDeserializer<TMessage>
{
    private readonly JsonTypeInfo<TMessage> _typeInfo;

    /// <summary>Initializes a new instance of the <see cref="JsonMessageDeserializer{TMessage}"/> class from source-generated metadata.</summary>
    /// <param name="typeInfo">The metadata of <typeparamref name="TMessage"/>, for example <c>MyJsonContext.Default.OrderEvent</c>.</param>
    public JsonMessageDeserializer(JsonTypeInfo<TMessage> typeInfo)
        : this(typeInfo, allowDuplicateProperties: false)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="JsonMessageDeserializer{TMessage}"/> class from source-generated metadata.</summary>
    /// <param name="typeInfo">The metadata of <typeparamref name="TMessage"/>, for example <c>MyJsonContext.Default.OrderEvent</c>.</param>
    /// <param name="allowDuplicateProperties">
    /// <see langword="true"/> to accept a payload that names a property twice (the last value wins); by default such a payload
    /// is rejected as poison.
    /// </param>
    public JsonMessageDeserializer(JsonTypeInfo<TMessage> typeInfo, bool allowDuplicateProperties)
    {
        ArgumentNullException.ThrowIfNull(typeInfo);
        _typeInfo = typeInfo.Options.AllowDuplicateProperties == allowDuplicateProperties
            ? typeInfo
            : GetTypeInfo(new JsonSerializerOptions(typeInfo.Options) { AllowDuplicateProperties = allowDuplicateProperties });
    }

    /// <summary>
    /// Initializes a new instance of the <see cref="JsonMessageDeserializer{TMessage}"/> class from serializer options.
    /// Options with a type resolver (a source-generated context) must know <typeparamref name="TMessage"/>; options without
    /// one use reflection, which trimmed and native AOT applications disable.
    /// </summary>
    /// <param name="options">The serializer options; their own <see cref="JsonSerializerOptions.AllowDuplicateProperties"/> is not used.</param>
    /// <exception cref="InvalidOperationException">The options cannot describe <typeparamref name="TMessage"/>.</exception>
    public JsonMessageDeserializer(JsonSerializerOptions options)
        : this(options, allowDuplicateProperties: false)
    {
    }

    /// <summary>
    /// Initializes a new instance of the <see cref="JsonMessageDeserializer{TMessage}"/> class from serializer options, saying
    /// whether a payload that names a property twice is accepted.
    /// </summary>
    /// <param name="options">The serializer options; their own <see cref="JsonSerializerOptions.AllowDuplicateProperties"/> is not used.</param>
    /// <param name="allowDuplicateProperties">
    /// <see langword="true"/> to accept a payload that names a property twice (the last value wins); by default such a payload
    /// is rejected as poison.
    /// </param>
    /// <exception cref="InvalidOperationException">The options cannot describe <typeparamref name="TMessage"/>.</exception>
    public JsonMessageDeserializer(JsonSerializerOptions options, bool allowDuplicateProperties)
    {
        ArgumentNullException.ThrowIfNull(options);
        options = new JsonSerializerOptions(options) { AllowDuplicateProperties = allowDuplicateProperties };
        if (options.TypeInfoResolver is null)
        {
            ThrowIfReflectionDisabled();
            options.TypeInfoResolver = DefaultOptions().TypeInfoResolver;
        }

        _typeInfo = GetTypeInfo(options);
    }

    /// <summary>The deserializer used when none is configured: System.Text.Json's default options, which need reflection, rejecting duplicate properties.</summary>
    internal JsonMessageDeserializer()
    {
        ThrowIfReflectionDisabled();
        _typeInfo = GetTypeInfo(new JsonSerializerOptions(DefaultOptions()) { AllowDuplicateProperties = false });
    }

    private static void ThrowIfReflectionDisabled()
    {
        if (!JsonSerializer.IsReflectionEnabledByDefault)
        {
            throw new InvalidOperationException(
                $"Reflection-based JSON is disabled in this application (trimmed or native AOT), so {typeof(TMessage).Name} cannot be deserialized without metadata. " +
                $"Pass source-generated metadata: WithJsonDeserializer(MyJsonContext.Default.{typeof(TMessage).Name}).");
        }
    }

    [UnconditionalSuppressMessage("Trimming", "IL2026", Justification = "Reached only when JsonSerializer.IsReflectionEnabledByDefault is true; trimmed and AOT applications get a clear error instead.")]
    [UnconditionalSuppressMessage("AOT", "IL3050", Justification = "Reached only when JsonSerializer.IsReflectionEnabledByDefault is true; trimmed and AOT applications get a clear error instead.")]
    private static JsonSerializerOptions DefaultOptions() => JsonSerializerOptions.Default;

    private static JsonTypeInfo<TMessage> GetTypeInfo(JsonSerializerOptions options)
    {
        try
        {
            return (JsonTypeInfo<TMessage>)options.GetTypeInfo(typeof(TMessage));
        }
        catch (Exception ex) when (ex is NotSupportedException or InvalidOperationException)
        {
            throw new InvalidOperationException(
                $"System.Text.Json cannot deserialize {typeof(TMessage).Name} with the given options ({ex.Message}). " +
                $"Pass source-generated metadata instead: WithJsonDeserializer(MyJsonContext.Default.{typeof(TMessage).Name}).",
                ex);
        }
    }

    /// <inheritdoc />
    public TMessage Deserialize(ReadOnlySpan<byte> value, bool isNull, MessageContext context)
    {
        if (isNull)
        {
            throw new InvalidDataException("The record has a null value (a tombstone); a JSON payload was expected.");
        }

        if (value.IsEmpty)
        {
            throw new InvalidDataException("The record's value is empty; a JSON payload was expected.");
        }

        try
        {
            return JsonSerializer.Deserialize(value, _typeInfo)
                ?? throw new InvalidDataException($"The payload is the JSON literal null; a {typeof(TMessage).Name} was expected.");
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or ArgumentException or NotSupportedException)
        {
            // InvalidOperationException: invalid UTF-8 inside a string; NotSupportedException: a shape the type cannot take.
            throw new InvalidDataException($"The payload is not a valid {typeof(TMessage).Name}: {ex.Message}", ex);
        }
    }
}
