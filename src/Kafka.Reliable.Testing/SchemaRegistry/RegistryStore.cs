using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Kafka.Reliable.Testing.SchemaRegistry;

/// <summary>An answer of the registry: an HTTP status and a JSON body.</summary>
internal readonly record struct RegistryResponse(int StatusCode, string Body);

/// <summary>An error answer of the registry, thrown inside the store and turned into <c>{"error_code":..,"message":..}</c>.</summary>
internal sealed class RegistryError(int statusCode, int errorCode, string message) : Exception(message)
{
    public int StatusCode { get; } = statusCode;

    public int ErrorCode { get; } = errorCode;

    public RegistryResponse ToResponse() => new(StatusCode, RegistryStore.Json(w =>
    {
        w.WriteNumber("error_code", ErrorCode);
        w.WriteString("message", Message);
    }));
}

/// <summary>
/// The registry's state (schemas by id, subjects with their versions, compatibility levels) and the REST subset that
/// Confluent's clients use. Thread-safe: one lock around every operation.
/// </summary>
internal sealed class RegistryStore
{
    public const string Avro = "AVRO";
    public const string JsonSchema = "JSON";
    public const string Protobuf = "PROTOBUF";

    // Schemas are JSON inside JSON: keep quotes, apostrophes and non-ASCII text readable (\" stays escaped).
    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static readonly string[] Levels = ["NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE"];

    private readonly Lock _gate = new();
    private readonly List<StoredSchema> _schemas = [];
    private readonly Dictionary<string, Subject> _subjects = new(StringComparer.Ordinal);
    private string _globalLevel = "BACKWARD";

    /// <summary>Answers one request.</summary>
    /// <param name="method">The HTTP method, upper case.</param>
    /// <param name="path">The path, still percent-encoded, without the query.</param>
    /// <param name="query">The query parameters, decoded.</param>
    /// <param name="body">The request body (empty when none).</param>
    public RegistryResponse Handle(string method, string path, IReadOnlyDictionary<string, string> query, string body)
    {
        try
        {
            var segments = path.Split('/', StringSplitOptions.RemoveEmptyEntries).Select(Uri.UnescapeDataString).ToArray();
            lock (_gate)
            {
                return Route(method, segments, query, body);
            }
        }
        catch (RegistryError error)
        {
            return error.ToResponse();
        }
    }

    /// <summary>Registers a schema under a subject as <c>POST /subjects/{subject}/versions</c> does.</summary>
    /// <returns>The schema's id.</returns>
    /// <exception cref="RegistryError">The registry refused the schema.</exception>
    public int Register(string subject, string schema, string schemaType)
    {
        var candidate = Candidate.Create(schema, schemaType, []);
        lock (_gate)
        {
            return Register(subject, candidate).Schema.Id;
        }
    }

    private RegistryResponse Route(string method, string[] s, IReadOnlyDictionary<string, string> query, string body)
    {
        switch (s)
        {
            case []:
                return Allow(method, "GET") ?? Ok("{}");
            case ["schemas", "types"]:
                return Allow(method, "GET") ?? Ok(JsonArray([Avro, JsonSchema, Protobuf], (w, v) => w.WriteStringValue(v)));
            case ["schemas", "ids", var id]:
                return Allow(method, "GET") ?? Ok(Json(w => WriteSchema(w, SchemaById(id), subject: null, version: null)));
            case ["schemas", "ids", var id, "schema"]:
                return Allow(method, "GET") ?? Ok(SchemaById(id).Text);
            case ["schemas", "ids", var id, "subjects"]:
            {
                if (Allow(method, "GET") is { } refused)
                {
                    return refused;
                }

                var schema = SchemaById(id);
                return Ok(JsonArray(UsesOf(schema).Select(u => u.Subject).Distinct().Order(StringComparer.Ordinal), (w, v) => w.WriteStringValue(v)));
            }

            case ["schemas", "ids", var id, "versions"]:
            {
                if (Allow(method, "GET") is { } refused)
                {
                    return refused;
                }

                var schema = SchemaById(id);
                return Ok(JsonArray(UsesOf(schema), (w, u) =>
                {
                    w.WriteStartObject();
                    w.WriteString("subject", u.Subject);
                    w.WriteNumber("version", u.Version);
                    w.WriteEndObject();
                }));
            }

            case ["schemas", "guids", var guid]:
            {
                if (Allow(method, "GET") is { } refused)
                {
                    return refused;
                }

                var schema = _schemas.Find(x => string.Equals(x.Guid, guid, StringComparison.OrdinalIgnoreCase))
                             ?? throw new RegistryError(404, 40403, $"Schema {guid} not found");
                return Ok(Json(w => WriteSchema(w, schema, subject: null, version: null)));
            }

            case ["subjects"]:
                return Allow(method, "GET") ?? Ok(JsonArray(_subjects.Where(x => x.Value.Versions.Count > 0).Select(x => x.Key).Order(StringComparer.Ordinal), (w, v) => w.WriteStringValue(v)));
            case ["subjects", var subject]:
                return method switch
                {
                    "POST" => Lookup(subject, Candidate.FromRequest(body)),
                    "DELETE" => DeleteSubject(subject),
                    _ => MethodNotAllowed(),
                };
            case ["subjects", var subject, "versions"]:
                return method switch
                {
                    "GET" => Ok(JsonArray(ExistingSubject(subject).Versions, (w, v) => w.WriteNumberValue(v.Version))),
                    "POST" => Ok(Json(w => WriteVersion(w, subject, Register(subject, Candidate.FromRequest(body))))),
                    _ => MethodNotAllowed(),
                };
            case ["subjects", var subject, "versions", var version]:
                return method switch
                {
                    "GET" => Ok(Json(w => WriteVersion(w, subject, Version(subject, version)))),
                    "DELETE" => DeleteVersion(subject, version),
                    _ => MethodNotAllowed(),
                };
            case ["subjects", var subject, "versions", var version, "schema"]:
                return Allow(method, "GET") ?? Ok(Version(subject, version).Schema.Text);
            case ["compatibility", "subjects", var subject, "versions"]:
                return Allow(method, "POST") ?? TestCompatibility(subject, version: null, Candidate.FromRequest(body));
            case ["compatibility", "subjects", var subject, "versions", var version]:
                return Allow(method, "POST") ?? TestCompatibility(subject, version, Candidate.FromRequest(body));
            case ["config"]:
                return method switch
                {
                    "GET" => Ok(Json(w => w.WriteString("compatibilityLevel", _globalLevel))),
                    "PUT" => Ok(Json(w => WriteLevelUpdate(w, _globalLevel = LevelFromRequest(body)))),
                    _ => MethodNotAllowed(),
                };
            case ["config", var subject]:
                return method switch
                {
                    "GET" => Ok(Json(w => w.WriteString("compatibilityLevel", SubjectLevel(subject, query)))),
                    "PUT" => Ok(Json(w => WriteLevelUpdate(w, SubjectFor(subject).Level = LevelFromRequest(body)))),
                    "DELETE" => DeleteSubjectLevel(subject),
                    _ => MethodNotAllowed(),
                };
            case ["mode"]:
                return Allow(method, "GET") ?? Ok(Json(w => w.WriteString("mode", "READWRITE")));
            default:
                throw new RegistryError(404, 404, "HTTP 404 Not Found");
        }
    }

    private SubjectVersion Register(string subject, Candidate candidate)
    {
        var entry = SubjectFor(subject);
        var existing = entry.Versions.Find(v => candidate.Matches(v.Schema));
        if (existing is not null)
        {
            return existing;
        }

        var level = LevelOf(entry);
        var problems = Incompatibilities(candidate, level, entry.Versions);
        if (problems.Count > 0)
        {
            throw new RegistryError(
                409,
                409,
                $"Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{string.Join(", ", problems)}]");
        }

        var schema = _schemas.Find(candidate.Matches);
        if (schema is null)
        {
            schema = new StoredSchema(_schemas.Count + 1, Guid.NewGuid().ToString("D"), candidate);
            _schemas.Add(schema);
        }

        var registered = new SubjectVersion(++entry.LastVersion, schema);
        entry.Versions.Add(registered);
        return registered;
    }

    private RegistryResponse Lookup(string subject, Candidate candidate)
    {
        var entry = ExistingSubject(subject);
        var found = entry.Versions.Find(v => candidate.Matches(v.Schema)) ?? throw new RegistryError(404, 40403, "Schema not found");
        return Ok(Json(w => WriteVersion(w, subject, found)));
    }

    private RegistryResponse TestCompatibility(string subject, string? version, Candidate candidate)
    {
        List<string> problems;
        if (version is null)
        {
            // Against the versions the subject's level names (all of them for a transitive level).
            var entry = _subjects.GetValueOrDefault(subject);
            problems = entry is null ? [] : Incompatibilities(candidate, LevelOf(entry), entry.Versions);
        }
        else
        {
            var against = Version(subject, version);
            var level = LevelOf(_subjects[subject]);
            // One version named: the level's direction, against that version only.
            problems = Incompatibilities(candidate, level.Replace("_TRANSITIVE", string.Empty, StringComparison.Ordinal), [against]);
        }

        return Ok(Json(w =>
        {
            w.WriteBoolean("is_compatible", problems.Count == 0);
            w.WriteStartArray("messages");
            foreach (var problem in problems)
            {
                w.WriteStringValue(problem);
            }

            w.WriteEndArray();
        }));
    }

    private static List<string> Incompatibilities(Candidate candidate, string level, List<SubjectVersion> versions)
    {
        if (level == "NONE" || versions.Count == 0)
        {
            return [];
        }

        var against = level.EndsWith("_TRANSITIVE", StringComparison.Ordinal) ? versions.AsEnumerable().Reverse() : [versions[^1]];
        var backward = level.StartsWith("BACKWARD", StringComparison.Ordinal) || level.StartsWith("FULL", StringComparison.Ordinal);
        var forward = level.StartsWith("FORWARD", StringComparison.Ordinal) || level.StartsWith("FULL", StringComparison.Ordinal);
        var problems = new List<string>();
        foreach (var old in against)
        {
            if (!string.Equals(old.Schema.Type, candidate.Type, StringComparison.Ordinal))
            {
                problems.Add($"{{errorType:'SCHEMA_TYPE_MISMATCH', description:'the new schema is {candidate.Type}, version {old.Version} is {old.Schema.Type}'}}");
                continue;
            }

            // Only Avro is checked; JSON Schema and Protobuf schemas are taken as compatible (documented limit).
            if (candidate.Avro is null || old.Schema.Avro is null)
            {
                continue;
            }

            var found = new List<string>();
            if (backward)
            {
                found.AddRange(AvroCompatibility.Incompatibilities(reader: candidate.Avro, writer: old.Schema.Avro));
            }

            if (forward)
            {
                found.AddRange(AvroCompatibility.Incompatibilities(reader: old.Schema.Avro, writer: candidate.Avro));
            }

            if (found.Count > 0)
            {
                problems.AddRange(found);
                problems.Add($"{{oldSchemaVersion: {old.Version}}}");
                problems.Add($"{{compatibility: '{level}'}}");
            }
        }

        return problems;
    }

    private RegistryResponse DeleteSubject(string subject)
    {
        var entry = ExistingSubject(subject);
        var deleted = entry.Versions.Select(v => v.Version).ToList();
        entry.Versions.Clear();
        return Ok(JsonArray(deleted, (w, v) => w.WriteNumberValue(v)));
    }

    private RegistryResponse DeleteVersion(string subject, string version)
    {
        var found = Version(subject, version);
        _subjects[subject].Versions.Remove(found);
        return Ok(found.Version.ToString(CultureInfo.InvariantCulture));
    }

    private string SubjectLevel(string subject, IReadOnlyDictionary<string, string> query)
    {
        if (_subjects.GetValueOrDefault(subject)?.Level is { } level)
        {
            return level;
        }

        if (query.TryGetValue("defaultToGlobal", out var toGlobal) && string.Equals(toGlobal, "true", StringComparison.OrdinalIgnoreCase))
        {
            return _globalLevel;
        }

        throw new RegistryError(404, 40408, $"Subject '{subject}' does not have subject-level compatibility configured");
    }

    private RegistryResponse DeleteSubjectLevel(string subject)
    {
        var entry = _subjects.GetValueOrDefault(subject);
        var level = entry?.Level ?? throw new RegistryError(404, 40408, $"Subject '{subject}' does not have subject-level compatibility configured");
        entry.Level = null;
        return Ok(Json(w => w.WriteString("compatibilityLevel", level)));
    }

    // Like the registry: a PUT is answered {"compatibility": level}, a GET {"compatibilityLevel": level}.
    private static void WriteLevelUpdate(Utf8JsonWriter w, string level) => w.WriteString("compatibility", level);

    private static string LevelFromRequest(string body)
    {
        var level = ReadBody(body, root => root.TryGetProperty("compatibility", out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null);
        return level is not null && Levels.Contains(level.ToUpperInvariant())
            ? level.ToUpperInvariant()
            : throw new RegistryError(422, 42203, $"Invalid compatibility level. Valid values are {string.Join(", ", Levels)}");
    }

    private string LevelOf(Subject entry) => entry.Level ?? _globalLevel;

    private Subject SubjectFor(string subject)
    {
        if (string.IsNullOrWhiteSpace(subject))
        {
            throw new RegistryError(422, 42208, "Invalid subject");
        }

        if (!_subjects.TryGetValue(subject, out var entry))
        {
            entry = new Subject();
            _subjects.Add(subject, entry);
        }

        return entry;
    }

    private Subject ExistingSubject(string subject)
        => _subjects.TryGetValue(subject, out var entry) && entry.Versions.Count > 0
            ? entry
            : throw new RegistryError(404, 40401, $"Subject '{subject}' not found.");

    private SubjectVersion Version(string subject, string version)
    {
        int? number = version is "latest" or "-1"
            ? null
            : int.TryParse(version, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= 1
                ? n
                : throw new RegistryError(422, 42202, $"The specified version '{version}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"");
        var entry = ExistingSubject(subject);
        return number is null
            ? entry.Versions[^1]
            : entry.Versions.Find(v => v.Version == number) ?? throw new RegistryError(404, 40402, $"Version {number} not found.");
    }

    private StoredSchema SchemaById(string id)
        => int.TryParse(id, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= 1 && n <= _schemas.Count
            ? _schemas[n - 1]
            : throw new RegistryError(404, 40403, $"Schema {id} not found");

    private List<(string Subject, int Version)> UsesOf(StoredSchema schema)
        => _subjects
            .OrderBy(x => x.Key, StringComparer.Ordinal)
            .SelectMany(x => x.Value.Versions.Where(v => ReferenceEquals(v.Schema, schema)).Select(v => (Subject: x.Key, v.Version)))
            .ToList();

    private static void WriteVersion(Utf8JsonWriter w, string subject, SubjectVersion version)
        => WriteSchema(w, version.Schema, subject, version.Version);

    private static void WriteSchema(Utf8JsonWriter w, StoredSchema schema, string? subject, int? version)
    {
        if (subject is not null)
        {
            w.WriteString("subject", subject);
            w.WriteNumber("version", version!.Value);
        }

        w.WriteNumber("id", schema.Id);
        w.WriteString("guid", schema.Guid);
        if (schema.Type != Avro)
        {
            // Like the registry: schemaType is left out for Avro.
            w.WriteString("schemaType", schema.Type);
        }

        if (schema.References.Count > 0)
        {
            w.WriteStartArray("references");
            foreach (var reference in schema.References)
            {
                w.WriteStartObject();
                w.WriteString("name", reference.Name);
                w.WriteString("subject", reference.Subject);
                w.WriteNumber("version", reference.Version);
                w.WriteEndObject();
            }

            w.WriteEndArray();
        }

        w.WriteString("schema", schema.Text);
    }

    private static RegistryResponse? Allow(string method, string allowed) => method == allowed ? null : MethodNotAllowed();

    private static RegistryResponse MethodNotAllowed() => new RegistryError(405, 405, "HTTP 405 Method Not Allowed").ToResponse();

    private static RegistryResponse Ok(string body) => new(200, body);

    internal static T ReadBody<T>(string body, Func<JsonElement, T> read)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new RegistryError(422, 422, "The request body must be a JSON object");
            }

            return read(document.RootElement);
        }
        catch (JsonException e)
        {
            throw new RegistryError(400, 400, "Unparseable request body: " + e.Message);
        }
    }

    /// <summary>A JSON object whose members <paramref name="writeMembers"/> writes.</summary>
    internal static string Json(Action<Utf8JsonWriter> writeMembers)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer, WriterOptions))
        {
            w.WriteStartObject();
            writeMembers(w);
            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static string JsonArray<T>(IEnumerable<T> items, Action<Utf8JsonWriter, T> write)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer, WriterOptions))
        {
            w.WriteStartArray();
            foreach (var item in items)
            {
                write(w, item);
            }

            w.WriteEndArray();
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private sealed class Subject
    {
        public List<SubjectVersion> Versions { get; } = [];

        /// <summary>The last version number given, deleted or not: numbers are not reused.</summary>
        public int LastVersion { get; set; }

        public string? Level { get; set; }
    }

    private sealed record SubjectVersion(int Version, StoredSchema Schema);
}

/// <summary>A reference from one schema to another, stored as given (never resolved).</summary>
internal readonly record struct SchemaReference(string Name, string Subject, int Version);

/// <summary>A schema as submitted: its text, type and references, validated and with its comparison form.</summary>
internal class Candidate
{
    protected Candidate(Candidate other)
    {
        Text = other.Text;
        Type = other.Type;
        References = other.References;
        Canonical = other.Canonical;
        Avro = other.Avro;
    }

    private Candidate(string text, string type, IReadOnlyList<SchemaReference> references, string canonical, global::Avro.Schema? avro)
    {
        Text = text;
        Type = type;
        References = references;
        Canonical = canonical;
        Avro = avro;
    }

    public string Text { get; }

    public string Type { get; }

    public IReadOnlyList<SchemaReference> References { get; }

    /// <summary>What two schemas of the same type are compared by: Avro's parsed form, minified JSON, or the exact text.</summary>
    public string Canonical { get; }

    /// <summary>The parsed Avro schema; null for other types, and for Avro schemas with references (they are not resolved).</summary>
    public global::Avro.Schema? Avro { get; }

    public bool Matches(Candidate other)
        => string.Equals(Type, other.Type, StringComparison.Ordinal)
           && string.Equals(Canonical, other.Canonical, StringComparison.Ordinal)
           && References.SequenceEqual(other.References);

    public static Candidate FromRequest(string body)
    {
        var (text, type, references) = RegistryStore.ReadBody(body, root =>
        {
            var text = root.TryGetProperty("schema", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString() : null;
            var type = root.TryGetProperty("schemaType", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
            var references = new List<SchemaReference>();
            if (root.TryGetProperty("references", out var r) && r.ValueKind == JsonValueKind.Array)
            {
                foreach (var reference in r.EnumerateArray())
                {
                    references.Add(new SchemaReference(
                        reference.TryGetProperty("name", out var n) ? n.GetString() ?? string.Empty : string.Empty,
                        reference.TryGetProperty("subject", out var sub) ? sub.GetString() ?? string.Empty : string.Empty,
                        reference.TryGetProperty("version", out var v) && v.TryGetInt32(out var version) ? version : 0));
                }
            }

            return (text, type, references);
        });
        return text is null
            ? throw new RegistryError(422, 42201, "Invalid schema: the request has no \"schema\"")
            : Create(text, type ?? RegistryStore.Avro, references);
    }

    public static Candidate Create(string text, string type, IReadOnlyList<SchemaReference> references)
    {
        type = type.ToUpperInvariant();
        switch (type)
        {
            case RegistryStore.Avro:
                try
                {
                    var avro = global::Avro.Schema.Parse(text);
                    return new Candidate(text, type, references, avro.ToString(), avro);
                }
                catch (Exception) when (references.Count > 0)
                {
                    // Named types from referenced schemas are not resolved: keep the schema unchecked.
                    return new Candidate(text, type, references, text, avro: null);
                }
                catch (Exception e)
                {
                    throw new RegistryError(422, 42201, $"Invalid schema {text}, details: {e.Message}");
                }

            case RegistryStore.JsonSchema:
                try
                {
                    using var document = JsonDocument.Parse(text);
                    if (document.RootElement.ValueKind is not (JsonValueKind.Object or JsonValueKind.True or JsonValueKind.False))
                    {
                        throw new RegistryError(422, 42201, $"Invalid schema {text}, details: a JSON Schema is an object or a boolean");
                    }

                    return new Candidate(text, type, references, Minified(document.RootElement), avro: null);
                }
                catch (JsonException e)
                {
                    throw new RegistryError(422, 42201, $"Invalid schema {text}, details: {e.Message}");
                }

            case RegistryStore.Protobuf:
                return string.IsNullOrWhiteSpace(text)
                    ? throw new RegistryError(422, 42201, "Invalid schema: empty")
                    : new Candidate(text, type, references, text, avro: null);

            default:
                throw new RegistryError(422, 42201, $"Invalid schema type {type}: expected AVRO, JSON or PROTOBUF");
        }
    }

    private static string Minified(JsonElement element)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            element.WriteTo(w);
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}

/// <summary>A registered schema: a candidate with its global id and guid.</summary>
internal sealed class StoredSchema(int id, string guid, Candidate candidate) : Candidate(candidate)
{
    public int Id { get; } = id;

    public string Guid { get; } = guid;
}
