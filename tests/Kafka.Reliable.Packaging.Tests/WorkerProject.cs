using System.Text.Json.Nodes;

namespace Kafka.Reliable.Packaging.Tests;

/// <summary>A fresh project made by the docs' own commands, in a folder of its own under the feed's work folder.</summary>
internal sealed class WorkerProject
{
    private static readonly TimeSpan StepTimeout = TimeSpan.FromMinutes(3);

    private WorkerProject(PackedFeed feed, Transcript transcript, string directory, string name)
    {
        Feed = feed;
        Transcript = transcript;
        Directory = directory;
        Name = name;
    }

    public PackedFeed Feed { get; }

    public Transcript Transcript { get; }

    public string Directory { get; }

    public string Name { get; }

    /// <summary>
    /// Runs the docs' commands (<c>dotnet new worker -n X</c>, <c>cd X</c>, <c>dotnet add package ...</c>) in a new folder.
    /// <c>dotnet add package Kafka.Reliable...</c> gets <c>--version</c> with the packed version: the docs install the latest release, the test the build under test.
    /// </summary>
    public static async Task<WorkerProject> CreateAsync(PackedFeed feed, string folder, IEnumerable<string> commands)
    {
        var transcript = new Transcript();
        var directory = Path.Combine(feed.WorkDirectory, folder);
        System.IO.Directory.CreateDirectory(directory);
        string? name = null;
        foreach (var command in commands)
        {
            var words = command.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (words is ["cd", var into])
            {
                directory = Path.Combine(directory, into);
                continue;
            }

            Assert.True(words[0] == "dotnet", $"The docs' install snippet has a command the test cannot run: '{command}'.");
            if (words is ["dotnet", "new", "worker", "-n", var projectName, ..])
            {
                name = projectName;
            }

            var arguments = words[1..].ToList();
            if (words is ["dotnet", "add", "package", var package] && package.StartsWith("Kafka.Reliable", StringComparison.Ordinal))
            {
                arguments.AddRange(["--version", feed.Version]);
            }

            await Commands.RunAsync(transcript, directory, StepTimeout, "dotnet", arguments);
        }

        Assert.True(name is not null, $"The docs' commands create no worker project (expected 'dotnet new worker -n <Name>'):\n{string.Join('\n', commands)}");
        Assert.True(File.Exists(Path.Combine(directory, name + ".csproj")), $"Expected {name}.csproj in {directory} after the docs' commands.\n{transcript}");
        return new WorkerProject(feed, transcript, directory, name);
    }

    /// <summary>Replaces Program.cs and deletes the template's Worker.cs, as the docs say.</summary>
    public void ReplaceProgram(string program)
    {
        File.WriteAllText(Path.Combine(Directory, "Program.cs"), program);
        File.Delete(Path.Combine(Directory, "Worker.cs"));
        Transcript.Add($"wrote Program.cs:\n{program}deleted Worker.cs");
    }

    /// <summary>Adds the docs' sections to the template's appsettings.json, beside its Logging section.</summary>
    public void MergeAppSettings(string json)
    {
        var path = Path.Combine(Directory, "appsettings.json");
        var settings = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        foreach (var (key, value) in JsonNode.Parse(json)!.AsObject())
        {
            settings[key] = value?.DeepClone();
        }

        File.WriteAllText(path, settings.ToJsonString(new() { WriteIndented = true }));
        Transcript.Add($"added to appsettings.json:\n{json}");
    }

    public Task BuildAsync() => Commands.RunAsync(Transcript, Directory, StepTimeout, "dotnet", "build", "-nologo");

    /// <summary>Starts the built worker (as <c>dotnet run</c> would, without building again).</summary>
    public RunningProcess Start(IReadOnlyDictionary<string, string> environment) =>
        Commands.Start(Transcript, Directory, environment, "dotnet", Path.Combine("bin", "Debug", "net10.0", Name + ".dll"));

    /// <summary>Publishes the worker trimmed and self-contained for this machine, and starts the published executable.</summary>
    public async Task<RunningProcess> PublishTrimmedAndStartAsync(IReadOnlyDictionary<string, string> environment)
    {
        var output = Path.Combine(Directory, "published");
        await Commands.RunAsync(
            Transcript, Directory, StepTimeout, "dotnet",
            "publish", "-c", "Release", "-r", System.Runtime.InteropServices.RuntimeInformation.RuntimeIdentifier, "--self-contained",
            "-p:PublishTrimmed=true", "-nologo", "-o", output);
        return Commands.Start(Transcript, output, environment, Path.Combine(output, Name));
    }
}
