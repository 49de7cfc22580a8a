using System.Text.Json;

namespace Kafka.Reliable.Tests.FailureHandling;

public sealed class ExceptionClassificationTests
{
    [Theory]
    [InlineData(typeof(TimeoutException), FailureKind.Transient)]
    [InlineData(typeof(IOException), FailureKind.Transient)]
    [InlineData(typeof(InvalidOperationException), FailureKind.Transient)]
    [InlineData(typeof(HttpRequestException), FailureKind.Transient)]
    [InlineData(typeof(TaskCanceledException), FailureKind.Transient)]
    [InlineData(typeof(NonRetryableException), FailureKind.Fatal)]
    [InlineData(typeof(ArgumentException), FailureKind.Fatal)]
    [InlineData(typeof(ArgumentNullException), FailureKind.Fatal)]
    [InlineData(typeof(FormatException), FailureKind.Fatal)]
    [InlineData(typeof(InvalidCastException), FailureKind.Fatal)]
    [InlineData(typeof(NullReferenceException), FailureKind.Fatal)]
    [InlineData(typeof(NotSupportedException), FailureKind.Fatal)]
    [InlineData(typeof(NotImplementedException), FailureKind.Fatal)]
    [InlineData(typeof(InvalidDataException), FailureKind.Fatal)]
    [InlineData(typeof(JsonException), FailureKind.Fatal)]
    public void Defaults(Type exceptionType, FailureKind expected)
    {
        var exception = (Exception)Activator.CreateInstance(exceptionType)!;
        Assert.Equal(expected, new ExceptionClassification().Classify(exception));
    }

    [Fact]
    public void RegisteredTypes_OverrideTheDefaults_AndTheLastRegistrationWins()
    {
        var classification = new ExceptionClassification()
            .Transient<ArgumentException>()
            .Fatal<ArgumentNullException>()
            .Fatal<IOException>();

        Assert.Equal(FailureKind.Transient, classification.Classify(new ArgumentOutOfRangeException()));
        Assert.Equal(FailureKind.Fatal, classification.Classify(new ArgumentNullException()));
        Assert.Equal(FailureKind.Fatal, classification.Classify(new FileNotFoundException()));
        Assert.Equal(FailureKind.Transient, classification.Classify(new TimeoutException()));
    }

    [Fact]
    public void ClassifierFunctions_ComeFirst_AndNullLeavesTheDecisionToTheRules()
    {
        var classification = new ExceptionClassification()
            .Fatal<IOException>()
            .Use(ex => ex.Message.Contains("deadlock", StringComparison.Ordinal) ? FailureKind.Transient : null);

        Assert.Equal(FailureKind.Transient, classification.Classify(new IOException("deadlock victim")));
        Assert.Equal(FailureKind.Fatal, classification.Classify(new IOException("disk full")));
    }
}
