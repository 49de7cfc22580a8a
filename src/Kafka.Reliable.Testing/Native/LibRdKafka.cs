using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using System.Runtime.InteropServices;

namespace Kafka.Reliable.Testing.Native;

/// <summary>
/// The parts of librdkafka's C API the embedded broker needs: creating a host handle and its mock cluster
/// (<c>rdkafka_mock.h</c>). The native library is the one <c>librdkafka.redist</c> ships with Confluent.Kafka.
/// </summary>
internal static partial class LibRdKafka
{
    private const string Library = "librdkafka";

    /// <summary>The file names to try, in order: the glibc build needs libsasl2, the CentOS 8 build does not, then musl.</summary>
    private static readonly string[] Candidates = ["librdkafka", "centos8-librdkafka", "alpine-librdkafka"];

    static LibRdKafka() => NativeLibrary.SetDllImportResolver(typeof(LibRdKafka).Assembly, Resolve);

    public const int ProducerType = 0;
    public const int ConfOk = 0;

    /// <summary>Forces the resolver to be installed and the library to be loaded, so that a failure surfaces with a clear message.</summary>
    /// <remarks>
    /// The dependencies keep, in trimmed applications, the P/Invoke classes that Confluent.Kafka binds by reflection (by method
    /// name) when the cluster's own producer and consumers are built; trimmed away, they fail with "Sequence contains no matching element".
    /// </remarks>
    [DynamicDependency(DynamicallyAccessedMemberTypes.PublicMethods | DynamicallyAccessedMemberTypes.NonPublicMethods, "Confluent.Kafka.Impl.NativeMethods.NativeMethods", "Confluent.Kafka")]
    [DynamicDependency(DynamicallyAccessedMemberTypes.PublicMethods | DynamicallyAccessedMemberTypes.NonPublicMethods, "Confluent.Kafka.Impl.NativeMethods.NativeMethods_Centos8", "Confluent.Kafka")]
    [DynamicDependency(DynamicallyAccessedMemberTypes.PublicMethods | DynamicallyAccessedMemberTypes.NonPublicMethods, "Confluent.Kafka.Impl.NativeMethods.NativeMethods_Alpine", "Confluent.Kafka")]
    public static void EnsureLoaded()
    {
        if (Resolve(Library, typeof(LibRdKafka).Assembly, null) == IntPtr.Zero)
        {
            throw new DllNotFoundException(
                "The embedded Kafka broker could not load librdkafka (tried " + string.Join(", ", Candidates) +
                "). It ships in the librdkafka.redist package that Confluent.Kafka references; make sure the package's native assets for this platform are in the output.");
        }
    }

    private static IntPtr _handle;

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (name != Library)
        {
            return IntPtr.Zero;
        }

        if (_handle != IntPtr.Zero)
        {
            return _handle;
        }

        foreach (var candidate in Candidates)
        {
            if (NativeLibrary.TryLoad(candidate, assembly, searchPath, out var handle))
            {
                return _handle = handle;
            }

            foreach (var path in CandidatePaths(candidate))
            {
                if (File.Exists(path) && NativeLibrary.TryLoad(path, out handle))
                {
                    return _handle = handle;
                }
            }
        }

        return IntPtr.Zero;
    }

    private static IEnumerable<string> CandidatePaths(string candidate)
    {
        var fileName = OperatingSystem.IsWindows() ? candidate + ".dll"
            : OperatingSystem.IsMacOS() ? candidate + ".dylib"
            : candidate + ".so";
        var baseDirectory = AppContext.BaseDirectory;
        yield return Path.Combine(baseDirectory, fileName);
        yield return Path.Combine(baseDirectory, "runtimes", RuntimeInformation.RuntimeIdentifier, "native", fileName);
        var os = OperatingSystem.IsWindows() ? "win" : OperatingSystem.IsMacOS() ? "osx" : "linux";
        var arch = RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant();
        yield return Path.Combine(baseDirectory, "runtimes", $"{os}-{arch}", "native", fileName);
    }

    [LibraryImport(Library)]
    public static partial IntPtr rd_kafka_conf_new();

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rd_kafka_conf_set(IntPtr conf, string name, string value, byte[] errstr, nuint errstrSize);

    [LibraryImport(Library)]
    public static partial void rd_kafka_conf_destroy(IntPtr conf);

    [LibraryImport(Library)]
    public static partial IntPtr rd_kafka_new(int type, IntPtr conf, byte[] errstr, nuint errstrSize);

    [LibraryImport(Library)]
    public static partial void rd_kafka_destroy(IntPtr rk);

    [LibraryImport(Library)]
    public static partial IntPtr rd_kafka_err2str(int err);

    [LibraryImport(Library)]
    public static partial IntPtr rd_kafka_mock_cluster_new(IntPtr rk, int brokerCount);

    [LibraryImport(Library)]
    public static partial void rd_kafka_mock_cluster_destroy(IntPtr mcluster);

    [LibraryImport(Library)]
    public static partial IntPtr rd_kafka_mock_cluster_bootstraps(IntPtr mcluster);

    [LibraryImport(Library)]
    public static partial void rd_kafka_mock_set_controller_id(IntPtr mcluster, int controllerId);

    [LibraryImport(Library)]
    public static partial void rd_kafka_mock_group_initial_rebalance_delay_ms(IntPtr mcluster, int delayMs);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rd_kafka_mock_topic_create(IntPtr mcluster, string topic, int partitionCount, int replicationFactor);

    [LibraryImport(Library)]
    public static partial void rd_kafka_mock_push_request_errors_array(IntPtr mcluster, short apiKey, nuint count, int[] errors);

    [LibraryImport(Library)]
    public static partial void rd_kafka_mock_clear_request_errors(IntPtr mcluster, short apiKey);

    [LibraryImport(Library)]
    public static partial int rd_kafka_mock_broker_set_down(IntPtr mcluster, int brokerId);

    [LibraryImport(Library)]
    public static partial int rd_kafka_mock_broker_set_up(IntPtr mcluster, int brokerId);

    [LibraryImport(Library)]
    public static partial int rd_kafka_mock_broker_set_rtt(IntPtr mcluster, int brokerId, int rttMs);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rd_kafka_mock_coordinator_set(IntPtr mcluster, string keyType, string key, int brokerId);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rd_kafka_mock_partition_set_leader(IntPtr mcluster, string topic, int partition, int brokerId);

    [LibraryImport(Library)]
    public static partial void rd_kafka_mock_start_request_tracking(IntPtr mcluster);

    [LibraryImport(Library)]
    public static partial void rd_kafka_mock_stop_request_tracking(IntPtr mcluster);

    [LibraryImport(Library)]
    public static partial void rd_kafka_mock_clear_requests(IntPtr mcluster);

    [LibraryImport(Library)]
    public static partial IntPtr rd_kafka_mock_get_requests(IntPtr mcluster, out nuint count);

    [LibraryImport(Library)]
    public static partial void rd_kafka_mock_request_destroy_array(IntPtr requests, nuint count);

    [LibraryImport(Library)]
    public static partial int rd_kafka_mock_request_id(IntPtr request);

    [LibraryImport(Library)]
    public static partial short rd_kafka_mock_request_api_key(IntPtr request);

    [LibraryImport(Library)]
    public static partial long rd_kafka_mock_request_timestamp(IntPtr request);

    [LibraryImport(Library)]
    public static partial void rd_kafka_mock_set_group_consumer_session_timeout_ms(IntPtr mcluster, int sessionTimeoutMs);

    [LibraryImport(Library)]
    public static partial void rd_kafka_mock_set_group_consumer_heartbeat_interval_ms(IntPtr mcluster, int heartbeatIntervalMs);

    [LibraryImport(Library)]
    public static partial IntPtr rd_kafka_mock_cgrp_consumer_target_assignment_new(IntPtr[] memberIds, int memberCount, IntPtr[] assignments);

    [LibraryImport(Library)]
    public static partial void rd_kafka_mock_cgrp_consumer_target_assignment_destroy(IntPtr targetAssignment);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    public static partial void rd_kafka_mock_cgrp_consumer_target_assignment(IntPtr mcluster, string groupId, IntPtr targetAssignment);

    [LibraryImport(Library)]
    public static partial IntPtr rd_kafka_topic_partition_list_new(int size);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    public static partial IntPtr rd_kafka_topic_partition_list_add(IntPtr list, string topic, int partition);

    [LibraryImport(Library)]
    public static partial void rd_kafka_topic_partition_list_destroy(IntPtr list);

    public static string ErrorText(int error) => Marshal.PtrToStringUTF8(rd_kafka_err2str(error)) ?? $"error {error}";

    public static string ErrorBuffer(byte[] buffer)
    {
        var length = Array.IndexOf(buffer, (byte)0);
        return System.Text.Encoding.UTF8.GetString(buffer, 0, length < 0 ? buffer.Length : length);
    }
}
