using System.Reflection;
using System.Text.Json;
using System.Xml.Linq;
using Kafka.Reliable.Testing;

namespace Kafka.Reliable.Packaging.Tests;

/// <summary>
/// Packs every package once for the whole collection into a local feed (with a version of its own, so that no package
/// cached by an earlier run can stand in for it), writes a nuget.config over the fresh projects (that feed, then the
/// repository's own sources) and starts the embedded broker the workers consume from.
/// </summary>
public sealed class PackedFeed : IAsyncLifetime
{
    public static readonly string[] PackageIds =
    [
        "Kafka.Reliable",
        "Kafka.Reliable.Testing",
        "Kafka.Reliable.Idempotency.Sqlite",
        "Kafka.Reliable.Idempotency.PostgreSql",
        "Kafka.Reliable.Idempotency.Redis",
        "Kafka.Reliable.SchemaRegistry",
        "Kafka.Reliable.OpenTelemetry",
        "Kafka.Reliable.Cli",
    ];

    private static readonly TimeSpan PackTimeout = TimeSpan.FromMinutes(4);

    public PackedFeed()
    {
        var metadata = typeof(PackedFeed).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().ToDictionary(static a => a.Key, static a => a.Value);
        RepositoryRoot = metadata["RepositoryRoot"]!;
        Configuration = metadata["Configuration"]!;
        var id = Guid.NewGuid().ToString("N")[..12];
        // One pre-release identifier (letters, digits, hyphens): never a numeric one with a leading zero.
        Version = $"0.1.0-packtest-{id}";
        Root = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "kafka-reliable-packaging-" + id);
        FeedDirectory = System.IO.Path.Combine(Root, "feed");
        WorkDirectory = System.IO.Path.Combine(Root, "work");
    }

    public string RepositoryRoot { get; }

    public string Configuration { get; }

    public string Version { get; }

    public string Root { get; }

    public string FeedDirectory { get; }

    /// <summary>Gets the folder the fresh projects go in, each in a folder of its own; its nuget.config names the feed.</summary>
    public string WorkDirectory { get; }

    internal Transcript PackTranscript { get; } = new();

    public EmbeddedKafkaCluster Cluster { get; private set; } = null!;

    public string RepositoryFile(string relativePath) => System.IO.Path.Combine(RepositoryRoot, relativePath);

    public async ValueTask InitializeAsync()
    {
        Directory.CreateDirectory(FeedDirectory);
        Directory.CreateDirectory(WorkDirectory);

        // The test project builds every src project first (its project references); pack those builds as a release
        // does after its build. A solution filter packs them all in one MSBuild run.
        var filter = System.IO.Path.Combine(Root, "packages.slnf");
        await File.WriteAllTextAsync(filter, JsonSerializer.Serialize(new
        {
            solution = new
            {
                path = RepositoryFile("Kafka.Reliable.sln"),
                projects = PackageIds.Select(static id => $"src/{id}/{id}.csproj").ToArray(),
            },
        }));
        await Commands.RunAsync(
            PackTranscript, RepositoryRoot, PackTimeout, "dotnet",
            "pack", filter, "-c", Configuration, "--no-build", "-warnaserror", "-nologo", $"-p:PackageVersion={Version}", "-o", FeedDirectory);

        await File.WriteAllTextAsync(System.IO.Path.Combine(WorkDirectory, "nuget.config"), NuGetConfig());
        Cluster = EmbeddedKafkaCluster.Start();
    }

    /// <summary>The feed first, then the repository's own sources (the registry mirror), nothing else.</summary>
    private string NuGetConfig()
    {
        var repository = XDocument.Load(RepositoryFile("nuget.config"));
        var sources = repository.Root!.Element("packageSources")!.Elements("add").ToList();
        var config = new XDocument(
            new XElement("configuration",
                new XElement("packageSources",
                    new XElement("clear"),
                    new XElement("add", new XAttribute("key", "packed"), new XAttribute("value", FeedDirectory)),
                    sources)));
        return config.ToString();
    }

    public async ValueTask DisposeAsync()
    {
        if (Cluster is not null)
        {
            await Cluster.DisposeAsync();
        }

        TryDelete(Root);
        // The packages this run installed into the global packages folder are never used again: their version is this run's.
        var packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } configured
            ? configured
            : System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        foreach (var id in PackageIds)
        {
            TryDelete(System.IO.Path.Combine(packages, id.ToLowerInvariant(), Version.ToLowerInvariant()));
        }
    }

    private static void TryDelete(string directory)
    {
        try
        {
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }
        catch (IOException)
        {
            // Best effort: a temporary folder left behind is harmless.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}

[CollectionDefinition(Name)]
public sealed class PackedFeedCollection : ICollectionFixture<PackedFeed>
{
    public const string Name = "packed feed";
}
