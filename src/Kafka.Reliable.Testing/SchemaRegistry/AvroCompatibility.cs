using System.Runtime.CompilerServices;
using Avro;

namespace Kafka.Reliable.Testing.SchemaRegistry;

/// <summary>
/// Avro schema resolution as a compatibility check: can a reader with one schema read data written with another?
/// Follows the Avro specification's resolution rules (records by field name or alias, defaults for the reader's missing
/// fields, the legal promotions, enum symbols, fixed sizes, unions branch by branch); logical types are compared by their
/// underlying type.
/// </summary>
internal static class AvroCompatibility
{
    /// <summary>Lists why <paramref name="reader"/> cannot read data written with <paramref name="writer"/>; empty when it can.</summary>
    public static List<string> Incompatibilities(Schema reader, Schema writer)
    {
        var errors = new List<string>();
        Check(reader, writer, string.Empty, errors, new HashSet<(Schema, Schema)>(PairComparer.Instance));
        return errors;
    }

    private static void Check(Schema reader, Schema writer, string path, List<string> errors, HashSet<(Schema, Schema)> inProgress)
    {
        reader = Underlying(reader);
        writer = Underlying(writer);

        if (writer is UnionSchema writerUnion)
        {
            // Every branch the writer may have written must be readable.
            for (var i = 0; i < writerUnion.Count; i++)
            {
                Check(reader, writerUnion.Schemas[i], $"{path}/{i}", errors, inProgress);
            }

            return;
        }

        if (reader is UnionSchema readerUnion)
        {
            // Some branch of the reader's union must read the writer's type.
            foreach (var branch in readerUnion.Schemas)
            {
                var branchErrors = new List<string>();
                Check(branch, writer, path, branchErrors, inProgress);
                if (branchErrors.Count == 0)
                {
                    return;
                }
            }

            errors.Add(Error("MISSING_UNION_BRANCH", path, $"the reader's union {Describe(reader)} has no branch that can read the writer's type {Describe(writer)}"));
            return;
        }

        switch (reader.Tag)
        {
            case Schema.Type.Null:
            case Schema.Type.Boolean:
            case Schema.Type.Int:
            case Schema.Type.Long:
            case Schema.Type.Float:
            case Schema.Type.Double:
            case Schema.Type.Bytes:
            case Schema.Type.String:
                if (reader.Tag != writer.Tag && !IsPromotion(writer.Tag, reader.Tag))
                {
                    errors.Add(TypeMismatch(reader, writer, path));
                }

                return;

            case Schema.Type.Array when writer is ArraySchema writerArray:
                Check(((ArraySchema)reader).ItemSchema, writerArray.ItemSchema, path + "/items", errors, inProgress);
                return;

            case Schema.Type.Map when writer is MapSchema writerMap:
                Check(((MapSchema)reader).ValueSchema, writerMap.ValueSchema, path + "/values", errors, inProgress);
                return;

            case Schema.Type.Fixed when writer is FixedSchema writerFixed:
                var readerFixed = (FixedSchema)reader;
                if (!NamesMatch(readerFixed, writerFixed))
                {
                    errors.Add(NameMismatch(readerFixed, writerFixed, path));
                }
                else if (readerFixed.Size != writerFixed.Size)
                {
                    errors.Add(Error("FIXED_SIZE_MISMATCH", path + "/size", $"the reader's fixed '{readerFixed.Fullname}' has size {readerFixed.Size}, the writer's has size {writerFixed.Size}"));
                }

                return;

            case Schema.Type.Enumeration when writer is EnumSchema writerEnum:
                var readerEnum = (EnumSchema)reader;
                if (!NamesMatch(readerEnum, writerEnum))
                {
                    errors.Add(NameMismatch(readerEnum, writerEnum, path));
                    return;
                }

                var missing = writerEnum.Symbols.Where(s => !readerEnum.Contains(s)).ToList();
                if (missing.Count > 0 && readerEnum.Default is null)
                {
                    errors.Add(Error("MISSING_ENUM_SYMBOLS", path + "/symbols", $"the reader's enum '{readerEnum.Fullname}' lacks the writer's symbols [{string.Join(", ", missing)}] and has no default symbol"));
                }

                return;

            case Schema.Type.Record or Schema.Type.Error when writer is RecordSchema writerRecord:
                CheckRecord((RecordSchema)reader, writerRecord, path, errors, inProgress);
                return;

            default:
                errors.Add(TypeMismatch(reader, writer, path));
                return;
        }
    }

    private static void CheckRecord(RecordSchema reader, RecordSchema writer, string path, List<string> errors, HashSet<(Schema, Schema)> inProgress)
    {
        if (!NamesMatch(reader, writer))
        {
            errors.Add(NameMismatch(reader, writer, path));
            return;
        }

        if (!inProgress.Add((reader, writer)))
        {
            // A recursive type met again: its check is already under way higher up.
            return;
        }

        for (var i = 0; i < reader.Fields.Count; i++)
        {
            var readerField = reader.Fields[i];
            var writerField = WriterField(writer, readerField);
            if (writerField is not null)
            {
                Check(readerField.Schema, writerField.Schema, $"{path}/fields/{i}/type", errors, inProgress);
            }
            else if (readerField.DefaultValue is null)
            {
                errors.Add(Error(
                    "READER_FIELD_MISSING_DEFAULT_VALUE",
                    $"{path}/fields/{i}",
                    $"the reader's field '{readerField.Name}' of record '{reader.Fullname}' has no default value and is missing from the writer's schema"));
            }
        }
    }

    private static Field? WriterField(RecordSchema writer, Field readerField)
    {
        if (writer.TryGetField(readerField.Name, out var field))
        {
            return field;
        }

        foreach (var alias in readerField.Aliases ?? [])
        {
            if (writer.TryGetField(alias, out field))
            {
                return field;
            }
        }

        return null;
    }

    // Like Confluent's check, the unqualified names are compared. Aliases of named types are not honoured (Apache.Avro
    // does not expose them); aliases of fields are.
    private static bool NamesMatch(NamedSchema reader, NamedSchema writer)
        => string.Equals(reader.Name, writer.Name, StringComparison.Ordinal);

    private static bool IsPromotion(Schema.Type written, Schema.Type read) => (written, read) switch
    {
        (Schema.Type.Int, Schema.Type.Long or Schema.Type.Float or Schema.Type.Double) => true,
        (Schema.Type.Long, Schema.Type.Float or Schema.Type.Double) => true,
        (Schema.Type.Float, Schema.Type.Double) => true,
        (Schema.Type.String, Schema.Type.Bytes) => true,
        (Schema.Type.Bytes, Schema.Type.String) => true,
        _ => false,
    };

    private static Schema Underlying(Schema schema) => schema is LogicalSchema logical ? logical.BaseSchema : schema;

    private static string TypeMismatch(Schema reader, Schema writer, string path)
        => Error("TYPE_MISMATCH", path, $"the reader's type {Describe(reader)} cannot read the writer's type {Describe(writer)}");

    private static string NameMismatch(NamedSchema reader, NamedSchema writer, string path)
        => Error("NAME_MISMATCH", path + "/name", $"the reader's name '{reader.Fullname}' does not match the writer's name '{writer.Fullname}'");

    private static string Describe(Schema schema) => schema switch
    {
        UnionSchema union => "[" + string.Join(", ", union.Schemas.Select(Describe)) + "]",
        NamedSchema named => $"{named.Tag.ToString().ToLowerInvariant()} '{named.Fullname}'",
        ArraySchema array => $"array<{Describe(array.ItemSchema)}>",
        MapSchema map => $"map<{Describe(map.ValueSchema)}>",
        LogicalSchema logical => Describe(logical.BaseSchema),
        _ => schema.Tag.ToString().ToLowerInvariant(),
    };

    private static string Error(string type, string path, string description)
        => $"{{errorType:'{type}', path:'{(path.Length == 0 ? "/" : path)}', description:'{description}'}}";

    private sealed class PairComparer : IEqualityComparer<(Schema, Schema)>
    {
        public static readonly PairComparer Instance = new();

        public bool Equals((Schema, Schema) x, (Schema, Schema) y) => ReferenceEquals(x.Item1, y.Item1) && ReferenceEquals(x.Item2, y.Item2);

        public int GetHashCode((Schema, Schema) obj) => HashCode.Combine(RuntimeHelpers.GetHashCode(obj.Item1), RuntimeHelpers.GetHashCode(obj.Item2));
    }
}
