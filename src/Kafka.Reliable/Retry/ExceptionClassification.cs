using System.Text.Json;

namespace Kafka.Reliable;

/// <summary>Whether retrying a failed record can help.</summary>
public enum FailureKind
{
    /// <summary>The failure may go away (a timeout, a connection refused, a deadlock): the record is retried, and the failure counts against the circuit breaker.</summary>
    Transient,

    /// <summary>Retrying cannot help (invalid data, a bug): the record is dead-lettered after this attempt.</summary>
    Fatal,
}

/// <summary>
/// Decides which handler exceptions are retried (<see cref="FailureKind.Transient"/>) and which dead-letter the record at once
/// (<see cref="FailureKind.Fatal"/>). Configure it with <c>builder.ClassifyExceptions(c => c.Fatal&lt;ValidationException&gt;())</c>.
/// </summary>
/// <remarks>
/// <para>The decision is taken in this order: the classifier functions added with <see cref="Use"/>, the last added first,
/// until one returns a kind; then the exception types registered with <see cref="Fatal{TException}"/> and
/// <see cref="Transient{TException}"/>, the last registered first, matching derived types too; then the defaults; and
/// anything else is transient.</para>
/// <para>Fatal by default: <see cref="NonRetryableException"/>, <see cref="ArgumentException"/> and its derived types,
/// <see cref="FormatException"/>, <see cref="InvalidCastException"/>, <see cref="NullReferenceException"/>,
/// <see cref="NotSupportedException"/>, <see cref="NotImplementedException"/>, <see cref="InvalidDataException"/> and
/// <see cref="JsonException"/>: retrying the same record with the same code gives the same result.</para>
/// </remarks>
public sealed class ExceptionClassification
{
    private static readonly Type[] DefaultFatal =
    [
        typeof(NonRetryableException), typeof(ArgumentException), typeof(FormatException), typeof(InvalidCastException),
        typeof(NullReferenceException), typeof(NotSupportedException), typeof(NotImplementedException),
        typeof(InvalidDataException), typeof(JsonException),
    ];

    private readonly List<(Type Type, FailureKind Kind)> _types = [];
    private readonly List<Func<Exception, FailureKind?>> _classifiers = [];

    /// <summary>Treats <typeparamref name="TException"/> and the exceptions derived from it as fatal: dead-lettered without retry.</summary>
    /// <typeparam name="TException">The exception type.</typeparam>
    /// <returns>This classification.</returns>
    public ExceptionClassification Fatal<TException>()
        where TException : Exception
    {
        _types.Add((typeof(TException), FailureKind.Fatal));
        return this;
    }

    /// <summary>Treats <typeparamref name="TException"/> and the exceptions derived from it as transient: retried, even where a default says fatal.</summary>
    /// <typeparam name="TException">The exception type.</typeparam>
    /// <returns>This classification.</returns>
    public ExceptionClassification Transient<TException>()
        where TException : Exception
    {
        _types.Add((typeof(TException), FailureKind.Transient));
        return this;
    }

    /// <summary>Adds a classifier function that sees every handler exception first; it returns <see langword="null"/> to leave the decision to the rules after it.</summary>
    /// <param name="classifier">The classifier, for example <c>ex =&gt; ex is SqlException { Number: 1205 } ? FailureKind.Transient : null</c>.</param>
    /// <returns>This classification.</returns>
    public ExceptionClassification Use(Func<Exception, FailureKind?> classifier)
    {
        ArgumentNullException.ThrowIfNull(classifier);
        _classifiers.Add(classifier);
        return this;
    }

    /// <summary>Classifies an exception thrown by a handler.</summary>
    /// <param name="exception">The exception.</param>
    /// <returns>The kind of failure.</returns>
    public FailureKind Classify(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        for (var i = _classifiers.Count - 1; i >= 0; i--)
        {
            if (_classifiers[i](exception) is { } kind)
            {
                return kind;
            }
        }

        for (var i = _types.Count - 1; i >= 0; i--)
        {
            if (_types[i].Type.IsInstanceOfType(exception))
            {
                return _types[i].Kind;
            }
        }

        foreach (var type in DefaultFatal)
        {
            if (type.IsInstanceOfType(exception))
            {
                return FailureKind.Fatal;
            }
        }

        return FailureKind.Transient;
    }
}

/// <summary>
/// Thrown by a handler to say that the record can never be processed (for example, it fails a business validation): the record
/// is dead-lettered at once, without retry, with this exception's message in its headers.
/// </summary>
public sealed class NonRetryableException : Exception
{
    /// <summary>Initializes a new instance of the <see cref="NonRetryableException"/> class.</summary>
    public NonRetryableException()
    {
    }

    /// <summary>Initializes a new instance of the <see cref="NonRetryableException"/> class with a message saying why the record is rejected.</summary>
    /// <param name="message">Why the record is rejected; it is written to the dead-letter record's headers, so it must not contain secrets.</param>
    public NonRetryableException(string message)
        : base(message)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="NonRetryableException"/> class with a message and the exception that caused it.</summary>
    /// <param name="message">Why the record is rejected.</param>
    /// <param name="innerException">The cause.</param>
    public NonRetryableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
