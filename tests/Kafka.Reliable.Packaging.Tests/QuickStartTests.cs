using System.IO.Compression;
using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace Kafka.Reliable.Packaging.Tests;

/// <summary>
/// The packed packages, installed into fresh <c>dotnet new worker</c> projects by the docs' own commands, with the docs'
/// own code (read from the markdown by its snippet markers): it compiles, starts against the embedded broker and consumes.
/// </summary>
[Collection(PackedFeedCollection.Name)]
public sealed partial class QuickStartTests(PackedFeed feed)
{
    private static readonly TimeSpan ConsumeTimeout = TimeSpan.FromSeconds(90);

    private Markdown Readme => Markdown.Read(feed.RepositoryFile("README.md"));

    [Fact]
    public async Task ReadmeQuickStart_InFreshWorker_CompilesStartsAndConsumes()
    {
        var worker = await WorkerProject.CreateAsync(feed, "quickstart", Readme.Commands("quickstart-commands"));
        worker.ReplaceProgram(Readme.Snippet("quickstart-program"));
        worker.MergeAppSettings(Readme.Snippet("quickstart-appsettings"));
        await worker.BuildAsync();

        await StartAndExpectConsumedAsync(worker, static (w, env) => Task.FromResult(w.Start(env)), orderId => $"Order {orderId} from partition 0 offset 0");
    }

    [Fact]
    public async Task TrimmedPublish_OfGettingStartedSnippet_StartsAndConsumes()
    {
        var guide = Markdown.Read(feed.RepositoryFile("docs/getting-started.md"));
        var worker = await WorkerProject.CreateAsync(feed, "trimmed", Readme.Commands("quickstart-commands"));
        worker.ReplaceProgram(guide.Snippet("trimmed-program"));
        worker.MergeAppSettings(Readme.Snippet("quickstart-appsettings"));

        await StartAndExpectConsumedAsync(worker, static (w, env) => w.PublishTrimmedAndStartAsync(env), orderId => $"Order {orderId} from partition 0 offset 0");
    }

    [Theory]
    [InlineData("Kafka.Reliable.Idempotency.Sqlite", "sqlite-program", true)]
    [InlineData("Kafka.Reliable.Idempotency.PostgreSql", "postgresql-program", false)]
    [InlineData("Kafka.Reliable.Idempotency.Redis", "redis-program", false)]
    [InlineData("Kafka.Reliable.SchemaRegistry", "schema-registry-program", false)]
    [InlineData("Kafka.Reliable.OpenTelemetry", "otel-program", true)]
    public async Task PackageReadmeSnippet_InFreshWorker_Compiles(string packageId, string snippet, bool start)
    {
        var storeReadme = Markdown.Read(feed.RepositoryFile($"src/{packageId}/README.md"));
        var install = storeReadme.Commands("install");
        Assert.Contains($"dotnet add package {packageId}", install);

        // The worker template's commands from the Quick Start, then the store README's own install lines.
        var template = Readme.Commands("quickstart-commands").Where(static c => !c.StartsWith("dotnet add package", StringComparison.Ordinal));
        var worker = await WorkerProject.CreateAsync(feed, packageId, template.Concat(install));
        worker.ReplaceProgram(storeReadme.Snippet(snippet));
        worker.MergeAppSettings(Readme.Snippet("quickstart-appsettings"));
        await worker.BuildAsync();

        // PostgreSQL, Redis and the Schema Registry would need their servers to start; compiling is what is checked for them.
        if (start)
        {
            var handled = packageId.EndsWith(".OpenTelemetry", StringComparison.Ordinal) ? "handled" : "handled once";
            await StartAndExpectConsumedAsync(worker, static (w, env) => Task.FromResult(w.Start(env)), orderId => $"Order {orderId} {handled}");
        }
    }

    [Fact]
    public async Task Tool_InstallsFromFeedAndRuns()
    {
        var transcript = new Transcript();
        var toolReadme = Markdown.Read(feed.RepositoryFile("src/Kafka.Reliable.Cli/README.md"));
        Assert.Contains("dotnet tool install --global Kafka.Reliable.Cli", toolReadme.Text, StringComparison.Ordinal);

        // As the README's line, into a folder of the test's instead of the machine's global tools.
        var tools = Path.Combine(feed.WorkDirectory, "tools");
        await Commands.RunAsync(transcript, feed.WorkDirectory, TimeSpan.FromMinutes(2), "dotnet", "tool", "install", "Kafka.Reliable.Cli", "--tool-path", tools, "--version", feed.Version);
        var help = await Commands.RunAsync(transcript, feed.WorkDirectory, TimeSpan.FromMinutes(1), Path.Combine(tools, "kafka-reliable"), "--help");
        Assert.True(help.Contains("embedded", StringComparison.Ordinal) && help.Contains("dlq", StringComparison.Ordinal), $"Expected the tool's help to list its commands.\n{transcript}\n{help}");
    }

    [Fact]
    public void EachPackage_ShipsTheReadmeBesideItsProject()
    {
        foreach (var id in PackedFeed.PackageIds)
        {
            var package = Path.Combine(feed.FeedDirectory, $"{id}.{feed.Version}.nupkg");
            Assert.True(File.Exists(package), $"Expected {package} to be packed.\n{feed.PackTranscript}");
            using var zip = ZipFile.OpenRead(package);
            var nuspec = zip.Entries.Single(static e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal));
            using (var stream = nuspec.Open())
            {
                var readme = XDocument.Load(stream).Descendants().SingleOrDefault(static e => e.Name.LocalName == "readme")?.Value;
                Assert.True(readme == "README.md", $"{id}: expected <readme>README.md</readme> in its nuspec, found '{readme}'.");
            }

            var shipped = zip.GetEntry("README.md");
            Assert.True(shipped is not null, $"{id}: README.md is missing from the package.");
            using var reader = new StreamReader(shipped.Open());
            Assert.True(
                reader.ReadToEnd() == File.ReadAllText(feed.RepositoryFile($"src/{id}/README.md")),
                $"{id}: the package's README.md is not src/{id}/README.md (each package ships its own, not the repository's).");
        }
    }

    [Fact]
    public void PackageReadmes_LinkOnlyAbsolutely()
    {
        foreach (var id in PackedFeed.PackageIds)
        {
            var path = feed.RepositoryFile($"src/{id}/README.md");
            var relative = Link().Matches(File.ReadAllText(path)).Select(static m => m.Groups[1].Value)
                .Where(static target => !target.StartsWith("https://", StringComparison.Ordinal)).ToList();
            Assert.True(relative.Count == 0, $"{path}: a package page breaks relative links; make these absolute (https://...): {string.Join(", ", relative)}");
        }
    }

    [Fact]
    public void CorePackageReadme_QuickStart_IsTheRepositoryReadmes()
    {
        var core = Markdown.Read(feed.RepositoryFile("src/Kafka.Reliable/README.md"));
        foreach (var snippet in new[] { "quickstart-commands", "quickstart-program", "quickstart-appsettings" })
        {
            Assert.True(core.Snippet(snippet) == Readme.Snippet(snippet), $"The Kafka.Reliable package README's '{snippet}' differs from README.md's: copy it over.");
        }
    }

    [Fact]
    public void Docs_GiveAnInstallLineForEveryPackage()
    {
        foreach (var doc in new[] { "README.md", "docs/getting-started.md" })
        {
            var text = File.ReadAllText(feed.RepositoryFile(doc));
            foreach (var id in PackedFeed.PackageIds)
            {
                var line = id == "Kafka.Reliable.Cli" ? $"dotnet tool install --global {id}" : $"dotnet add package {id}";
                Assert.True(Regex.IsMatch(text, Regex.Escape(line) + @"(\s|`|$)"), $"{doc} has no install line for {id}: expected '{line}'.");
            }
        }
    }

    private async Task StartAndExpectConsumedAsync(
        WorkerProject worker, Func<WorkerProject, IReadOnlyDictionary<string, string>, Task<RunningProcess>> start, Func<string, string> expectedLine)
    {
        var run = Guid.NewGuid().ToString("N")[..8];
        var topic = "orders-" + run;
        var orderId = "o-" + run;
        feed.Cluster.CreateTopic(topic);
        await feed.Cluster.ProduceStringsAsync(topic, [new(orderId, $$"""{"OrderId":"{{orderId}}","Total":12.50}""")], TestContext.Current.CancellationToken);

        // The docs' settings, pointed at the embedded broker and this test's topic and group.
        var environment = new Dictionary<string, string>
        {
            ["Kafka__Orders__BootstrapServers"] = feed.Cluster.BootstrapServers,
            ["Kafka__Orders__Topics__0"] = topic,
            ["Kafka__Orders__GroupId"] = "packaging-" + run,
            ["DOTNET_ENVIRONMENT"] = "Production",
        };
        await using var process = await start(worker, environment);
        var expected = expectedLine(orderId);
        var consumed = await process.WaitForOutputAsync(expected, ConsumeTimeout);
        Assert.True(consumed, $"Expected the worker to log '{expected}' within {ConsumeTimeout}.\n{worker.Transcript}\nWorker output:\n{process.Output}");
    }

    [GeneratedRegex(@"\]\(([^)\s]+)\)")]
    private static partial Regex Link();
}
