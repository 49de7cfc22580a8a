using System.Reflection;
using System.Runtime.ExceptionServices;

namespace Kafka.Reliable.Tests.Infrastructure;

/// <summary>Wraps an interface (a Kafka client) so that a test sees every call before it is made, and can make it throw instead.</summary>
public static class CallInterceptor
{
    /// <summary>Wraps <paramref name="inner"/>; <paramref name="before"/> sees each call and returns an exception to throw, or null to let it through.</summary>
    public static T Wrap<T>(T inner, Func<MethodInfo, object?[]?, Exception?> before)
        where T : class
    {
        var proxy = DispatchProxy.Create<T, CallInterceptorProxy<T>>();
        ((CallInterceptorProxy<T>)(object)proxy).Initialize(inner, before);
        return proxy;
    }
}

/// <summary>The proxy behind <see cref="CallInterceptor.Wrap{T}"/>.</summary>
/// <typeparam name="T">The interface.</typeparam>
public class CallInterceptorProxy<T> : DispatchProxy
    where T : class
{
    private T? _inner;
    private Func<MethodInfo, object?[]?, Exception?>? _before;

    internal void Initialize(T inner, Func<MethodInfo, object?[]?, Exception?> before)
    {
        _inner = inner;
        _before = before;
    }

    protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
    {
        ArgumentNullException.ThrowIfNull(targetMethod);
        if (_before!(targetMethod, args) is { } fault)
        {
            throw fault;
        }

        try
        {
            return targetMethod.Invoke(_inner, args);
        }
        catch (TargetInvocationException ex) when (ex.InnerException is not null)
        {
            ExceptionDispatchInfo.Throw(ex.InnerException);
            throw;
        }
    }
}
