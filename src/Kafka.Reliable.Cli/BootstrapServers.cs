using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Kafka.Reliable.Cli;

/// <summary>
/// Checks <c>--bootstrap-servers</c> before any Kafka client is built: a malformed list is an invalid command line, and a
/// host name that does not resolve is reported at once as such, instead of as a transport failure when the client gives up.
/// </summary>
internal static class BootstrapServers
{
    private static readonly TimeSpan ResolveTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Splits the list into hosts and ports; throws a <see cref="CliException"/> (exit code 1) for a malformed entry.</summary>
    public static List<(string Host, int? Port)> Parse(string servers)
    {
        var entries = servers.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (entries.Length == 0)
        {
            throw Malformed(servers, "it names no broker");
        }

        var parsed = new List<(string Host, int? Port)>(entries.Length);
        foreach (var entry in entries)
        {
            // librdkafka accepts an optional protocol prefix (PLAINTEXT://host:port) and a port-less host (port 9092).
            var address = entry.Contains("://", StringComparison.Ordinal) ? entry[(entry.IndexOf("://", StringComparison.Ordinal) + 3)..] : entry;
            string host;
            string? port = null;
            if (address.StartsWith('['))
            {
                var close = address.IndexOf(']', StringComparison.Ordinal);
                if (close < 0)
                {
                    throw Malformed(servers, $"'{entry}' opens an IPv6 address with '[' but does not close it");
                }

                host = address[1..close];
                port = address.Length > close + 1 && address[close + 1] == ':' ? address[(close + 2)..] : null;
            }
            else
            {
                var colon = address.LastIndexOf(':');
                host = colon < 0 ? address : address[..colon];
                port = colon < 0 ? null : address[(colon + 1)..];
            }

            if (host.Length == 0)
            {
                throw Malformed(servers, $"'{entry}' has no host");
            }

            int? number = null;
            if (port is not null)
            {
                if (!int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out var value) || value is < 1 or > 65535)
                {
                    throw Malformed(servers, $"'{entry}' has port '{port}', not a number from 1 to 65535");
                }

                number = value;
            }

            parsed.Add((host, number));
        }

        return parsed;
    }

    /// <summary>
    /// Resolves every host of the list. When none resolves, throws a <see cref="CliException"/> (exit code 3) that says which
    /// host did not resolve and why; when only some do not, warns on <paramref name="error"/> and lets the client try the others.
    /// </summary>
    public static async Task CheckAsync(string servers, TextWriter error, CancellationToken cancellationToken)
    {
        var hosts = Parse(servers).Select(h => h.Host).Distinct(StringComparer.OrdinalIgnoreCase).ToList();
        var failures = new List<string>();
        foreach (var host in hosts)
        {
            if (IPAddress.TryParse(host, out _))
            {
                continue;
            }

            try
            {
                var addresses = await Dns.GetHostAddressesAsync(host, cancellationToken).WaitAsync(ResolveTimeout, cancellationToken).ConfigureAwait(false);
                if (addresses.Length == 0)
                {
                    failures.Add($"'{host}' has no address");
                }
            }
            catch (SocketException ex)
            {
                failures.Add($"'{host}' does not resolve ({ex.Message})");
            }
            catch (TimeoutException)
            {
                failures.Add($"'{host}' could not be resolved within {ResolveTimeout.TotalSeconds:0} s (no answer from the DNS server)");
            }
        }

        if (failures.Count == 0)
        {
            return;
        }

        if (failures.Count == hosts.Count)
        {
            throw new CliException(ExitCodes.Unreachable, $"Cannot resolve the brokers of --bootstrap-servers '{servers}': {string.Join("; ", failures)}. Check the host names.");
        }

        await error.WriteLineAsync($"warning: {string.Join("; ", failures)}; trying the other brokers of --bootstrap-servers.").ConfigureAwait(false);
    }

    private static CliException Malformed(string servers, string problem) =>
        new(ExitCodes.BadArguments, $"--bootstrap-servers '{servers}' is not a list of host:port pairs separated by commas: {problem}.");
}
