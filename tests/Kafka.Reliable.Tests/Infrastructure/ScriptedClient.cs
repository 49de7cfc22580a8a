using System.Reflection;

namespace Kafka.Reliable.Tests.Infrastructure;

/// <summary>
/// A Kafka client interface with no client behind it: every call is recorded, and answers (or throws) what the test
/// scripted for that method, else the return type's default. It tests the poll thread's coordinators without librdkafka.
/// </summary>
public static class ScriptedClient
{
    /// <summary>Creates the client; <paramref name="script"/> answers calls by method name (null: not scripted).</summary>
    public static (T Client, List<(string Method, object?[] Args)> Calls) Create<T>(Func<string, object?[], (bool Handled, object? Result)>? script = null)
        where T : class
    {
        var proxy = DispatchProxy.Create<T, ScriptedClientProxy>();
        var calls = new List<(string Method, object?[] Args)>();
        ((ScriptedClientProxy)(object)proxy).Initialize(calls, script ?? ((_, _) => (false, null)));
        return (proxy, calls);
    }
}

/// <summary>The proxy behind <see cref="ScriptedClient.Create{T}"/>.</summary>
public class ScriptedClientProxy : DispatchProxy
{
    private List<(string Method, object?[] Args)> _calls = [];
    private Func<string, object?[], (bool Handled, object? Result)> _script = (_, _) => (false, null);

    internal void Initialize(List<(string Method, object?[] Args)> calls, Func<string, object?[], (bool Handled, object? Result)> script)
    {
        _calls = calls;
        _script = script;
    }

    protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
    {
        ArgumentNullException.ThrowIfNull(targetMethod);
        args ??= [];
        _calls.Add((targetMethod.Name, args));
        var (handled, result) = _script(targetMethod.Name, args);
        if (handled)
        {
            return result is Exception exception ? throw exception : result;
        }

        var type = targetMethod.ReturnType;
        return type == typeof(void) || !type.IsValueType ? null : Activator.CreateInstance(type);
    }
}
