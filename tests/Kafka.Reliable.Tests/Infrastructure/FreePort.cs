using System.Net;
using System.Net.Sockets;

namespace Kafka.Reliable.Tests.Infrastructure;

/// <summary>A loopback port nothing listens on right now: bound for a moment, then released.</summary>
internal static class FreePort
{
    public static int Next()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
