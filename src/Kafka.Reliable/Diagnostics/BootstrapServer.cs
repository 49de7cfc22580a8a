using System.Globalization;

namespace Kafka.Reliable.Diagnostics;

/// <summary>
/// The broker a client contacts first, read from its <c>bootstrap.servers</c>, for the conventions' <c>server.address</c>
/// and <c>server.port</c>: the first entry of the list, without a <c>PLAINTEXT://</c>-style prefix or IPv6 brackets.
/// </summary>
internal readonly record struct BootstrapServer(string Address, int? Port)
{
    /// <summary>Kafka's port when an entry names none.</summary>
    private const int DefaultPort = 9092;

    /// <summary>Reads the first broker of a bootstrap list; null when the list is empty.</summary>
    public static BootstrapServer? Parse(string? servers)
    {
        if (string.IsNullOrWhiteSpace(servers))
        {
            return null;
        }

        var first = servers.AsSpan();
        var comma = first.IndexOf(',');
        if (comma >= 0)
        {
            first = first[..comma];
        }

        first = first.Trim();
        var scheme = first.IndexOf("://", StringComparison.Ordinal);
        if (scheme >= 0)
        {
            first = first[(scheme + 3)..];
        }

        if (first.IsEmpty)
        {
            return null;
        }

        ReadOnlySpan<char> host;
        ReadOnlySpan<char> port;
        if (first[0] == '[' && first.IndexOf(']') is > 0 and var close)
        {
            // [::1]:9092
            host = first[1..close];
            port = first[(close + 1)..].TrimStart(':');
        }
        else if (first.IndexOf(':') is >= 0 and var colon && first.LastIndexOf(':') == colon)
        {
            host = first[..colon];
            port = first[(colon + 1)..];
        }
        else
        {
            // A host alone, or an IPv6 address without brackets (its colons are not a port).
            host = first;
            port = [];
        }

        if (host.IsEmpty)
        {
            return null;
        }

        int? number = port.IsEmpty ? DefaultPort
            : int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed) && parsed is > 0 and <= 65535 ? parsed
            : null;
        return new BootstrapServer(host.ToString(), number);
    }
}
