namespace Kafka.Reliable.SchemaRegistry;

/// <summary>
/// The message types of a <c>.proto</c> schema text, in declaration order, nested as declared: enough to tell which full name
/// a Confluent message-index path points at. Not a Protobuf parser: comments, strings, enums, services, options and oneofs
/// are skipped; map fields count as the nested entry types protoc makes of them, proto2 groups as nested messages. A text it
/// cannot follow (unbalanced braces) gives no outline, and the message type is then not checked.
/// </summary>
internal sealed class ProtobufSchemaOutline
{
    private const string MapEntry = "<map entry>";

    private ProtobufSchemaOutline(string package, Node root)
    {
        Package = package;
        Root = root;
    }

    /// <summary>Gets the schema's package; empty when it declares none.</summary>
    public string Package { get; }

    private Node Root { get; }

    /// <summary>Outlines a schema text; null when the text cannot be followed.</summary>
    public static ProtobufSchemaOutline? TryParse(string text)
    {
        var tokens = Tokenize(text);
        if (tokens is null)
        {
            return null;
        }

        var root = new Node(string.Empty, isMessage: true);
        var stack = new Stack<Node>();
        stack.Push(root);
        var package = string.Empty;
        Node? pending = null;
        for (var i = 0; i < tokens.Count; i++)
        {
            var token = tokens[i];
            var scope = stack.Peek();
            switch (token)
            {
                case "{":
                    stack.Push(pending ?? new Node(string.Empty, isMessage: false));
                    pending = null;
                    break;
                case "}":
                    if (stack.Count == 1)
                    {
                        return null;
                    }

                    stack.Pop();
                    break;
                case "package" when stack.Count == 1 && i + 1 < tokens.Count:
                    package = tokens[++i];
                    break;
                case "message" when i + 2 < tokens.Count && IsIdentifier(tokens[i + 1]) && tokens[i + 2] == "{":
                    pending = Declare(scope, tokens[++i]);
                    break;
                // proto2: 'optional group Result = 1 { ... }' declares the nested message type Result.
                case "group" when scope.IsMessage && i + 2 < tokens.Count && IsIdentifier(tokens[i + 1]) && tokens[i + 2] == "=":
                    pending = Declare(scope, tokens[++i]);
                    break;
                // 'map<K, V> name = n;' makes protoc add a nested NameEntry type, in declaration order.
                case "map" when scope.IsMessage && stack.Count > 1 && i + 1 < tokens.Count && tokens[i + 1] == "<":
                    _ = Declare(scope, MapEntry);
                    break;
                default:
                    break;
            }
        }

        return stack.Count == 1 ? new ProtobufSchemaOutline(package, root) : null;
    }

    /// <summary>Gets the full name of the message type an index path points at, or null when the path leads nowhere.</summary>
    public string? FullNameAt(IReadOnlyList<int> indexes)
    {
        var node = Root;
        var name = Package;
        foreach (var index in indexes)
        {
            if (index >= node.Nested.Count)
            {
                return null;
            }

            node = node.Nested[index];
            name = name.Length == 0 ? node.Name : $"{name}.{node.Name}";
        }

        return name;
    }

    private static Node Declare(Node scope, string name)
    {
        var node = new Node(name, isMessage: true);
        // Messages declared where no message can be (a service, an extend block) are followed but not counted.
        if (scope.IsMessage)
        {
            scope.Nested.Add(node);
        }

        return node;
    }

    private static bool IsIdentifier(string token) => token.Length > 0 && (char.IsLetter(token[0]) || token[0] == '_');

    /// <summary>Splits a schema text into identifiers (dots included) and one-character symbols, leaving out comments and strings.</summary>
    private static List<string>? Tokenize(string text)
    {
        var tokens = new List<string>();
        var i = 0;
        while (i < text.Length)
        {
            var c = text[i];
            if (char.IsWhiteSpace(c))
            {
                i++;
            }
            else if (c == '/' && i + 1 < text.Length && text[i + 1] == '/')
            {
                i = text.IndexOf('\n', i) is var end and >= 0 ? end + 1 : text.Length;
            }
            else if (c == '/' && i + 1 < text.Length && text[i + 1] == '*')
            {
                var end = text.IndexOf("*/", i + 2, StringComparison.Ordinal);
                if (end < 0)
                {
                    return null;
                }

                i = end + 2;
            }
            else if (c is '"' or '\'')
            {
                i++;
                while (i < text.Length && text[i] != c)
                {
                    i += text[i] == '\\' ? 2 : 1;
                }

                if (i >= text.Length)
                {
                    return null;
                }

                i++;
            }
            else if (char.IsLetterOrDigit(c) || c is '_' or '.')
            {
                var start = i;
                while (i < text.Length && (char.IsLetterOrDigit(text[i]) || text[i] is '_' or '.'))
                {
                    i++;
                }

                tokens.Add(text[start..i]);
            }
            else
            {
                tokens.Add(c.ToString());
                i++;
            }
        }

        return tokens;
    }

    private sealed class Node(string name, bool isMessage)
    {
        public string Name { get; } = name;

        public bool IsMessage { get; } = isMessage;

        public List<Node> Nested { get; } = [];
    }
}
