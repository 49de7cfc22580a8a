using System.Net;
using System.Net.Sockets;
using System.Text;
using Avro.Generic;
using Confluent.Kafka;
using Confluent.SchemaRegistry;
using Confluent.SchemaRegistry.Serdes;
using RecordSchema = Avro.RecordSchema;
using Schema = Confluent.SchemaRegistry.Schema;

namespace Kafka.Reliable.Testing.Tests;

public sealed class EmbeddedSchemaRegistryTests
{
    private const string OrderV1 = """
        {"type":"record","name":"Order","namespace":"shop","fields":[
          {"name":"id","type":"string"},
          {"name":"quantity","type":"int"}]}
        """;

    // Backward compatible with V1: the added field has a default.
    private const string OrderV2WithDefault = """
        {"type":"record","name":"Order","namespace":"shop","fields":[
          {"name":"id","type":"string"},
          {"name":"quantity","type":"int"},
          {"name":"note","type":["null","string"],"default":null}]}
        """;

    private const string OrderAddedFieldWithoutDefault = """
        {"type":"record","name":"Order","namespace":"shop","fields":[
          {"name":"id","type":"string"},
          {"name":"quantity","type":"int"},
          {"name":"currency","type":"string"}]}
        """;

    private const string OrderIdStringToInt = """
        {"type":"record","name":"Order","namespace":"shop","fields":[
          {"name":"id","type":"int"},
          {"name":"quantity","type":"int"}]}
        """;

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Start_ListensOnALoopbackPort()
    {
        using var registry = EmbeddedSchemaRegistry.Start();

        var url = new Uri(registry.Url);
        Assert.Equal("http", url.Scheme);
        Assert.Equal("127.0.0.1", url.Host);
        using var client = new TcpClient();
        await client.ConnectAsync(url.Host, url.Port, Token);
        Assert.True(client.Connected);
    }

    [Fact]
    public async Task Register_ThenGetByIdBySubjectVersionAndLatest_ReturnsTheSchema()
    {
        using var registry = EmbeddedSchemaRegistry.Start();
        using var client = NewClient(registry);

        var id = await client.RegisterSchemaAsync("orders-value", new Schema(OrderV1, SchemaType.Avro));

        var byId = await client.GetSchemaAsync(id);
        Assert.Equal(OrderV1, byId.SchemaString);
        Assert.Equal(SchemaType.Avro, byId.SchemaType);
        Assert.Empty(byId.References);

        var byVersion = await client.GetRegisteredSchemaAsync("orders-value", 1);
        var latest = await client.GetLatestSchemaAsync("orders-value");
        foreach (var registered in new[] { byVersion, latest })
        {
            Assert.Equal("orders-value", registered.Subject);
            Assert.Equal((1, id, OrderV1), (registered.Version, registered.Id, registered.SchemaString));
        }

        var lookedUp = await client.LookupSchemaAsync("orders-value", new Schema(OrderV1, SchemaType.Avro), ignoreDeletedSchemas: true);
        Assert.Equal((id, 1), (lookedUp.Id, lookedUp.Version));
        Assert.Equal(["orders-value"], await client.GetAllSubjectsAsync());
        Assert.Equal([1], await client.GetSubjectVersionsAsync("orders-value"));
    }

    [Fact]
    public async Task Register_SameSchemaAgain_SameIdAndVersion_AndSameIdUnderAnotherSubject()
    {
        using var registry = EmbeddedSchemaRegistry.Start();
        using var first = NewClient(registry);
        using var second = NewClient(registry); // its own cache: the second registration reaches the registry

        var id = await first.RegisterSchemaAsync("orders-value", new Schema(OrderV1, SchemaType.Avro));
        var before = registry.RequestCount;
        // The same schema written differently (whitespace) is the same Avro schema.
        var again = await second.RegisterSchemaWithResponseAsync("orders-value", new Schema(OrderV1.ReplaceLineEndings(" "), SchemaType.Avro));
        var elsewhere = await second.RegisterSchemaAsync("archive-value", new Schema(OrderV1, SchemaType.Avro));

        Assert.Equal(before + 2, registry.RequestCount);
        Assert.Equal((id, 1), (again.Id, again.Version));
        Assert.Equal(id, elsewhere);
        Assert.Equal([1], await second.GetSubjectVersionsAsync("orders-value"));
    }

    [Fact]
    public async Task AvroBackward_FieldWithDefaultAdded_RegistersAsVersion2()
    {
        using var registry = EmbeddedSchemaRegistry.Start();
        using var client = NewClient(registry);
        var v1 = await client.RegisterSchemaAsync("orders-value", new Schema(OrderV1, SchemaType.Avro));

        Assert.True(await client.IsCompatibleAsync("orders-value", new Schema(OrderV2WithDefault, SchemaType.Avro)));
        var v2 = await client.RegisterSchemaWithResponseAsync("orders-value", new Schema(OrderV2WithDefault, SchemaType.Avro));

        Assert.Equal(2, v2.Version);
        Assert.NotEqual(v1, v2.Id);
        Assert.Equal([1, 2], await client.GetSubjectVersionsAsync("orders-value"));
        Assert.Equal(v2.Id, (await client.GetLatestSchemaAsync("orders-value")).Id);
        Assert.Equal(Compatibility.Backward, await client.GetCompatibilityAsync());
    }

    [Theory]
    [InlineData(OrderAddedFieldWithoutDefault, "READER_FIELD_MISSING_DEFAULT_VALUE")]
    [InlineData(OrderIdStringToInt, "TYPE_MISMATCH")]
    public async Task AvroBackward_IncompatibleChange_RefusedWith409_AndTheCompatibilityEndpointSaysSo(string changed, string errorType)
    {
        using var registry = EmbeddedSchemaRegistry.Start();
        using var client = NewClient(registry);
        await client.RegisterSchemaAsync("orders-value", new Schema(OrderV1, SchemaType.Avro));

        Assert.False(await client.IsCompatibleAsync("orders-value", new Schema(changed, SchemaType.Avro)));
        var refused = await Assert.ThrowsAsync<SchemaRegistryException>(() => client.RegisterSchemaAsync("orders-value", new Schema(changed, SchemaType.Avro)));

        Assert.Equal(409, refused.ErrorCode);
        Assert.Equal(HttpStatusCode.Conflict, refused.Status);
        Assert.Contains("incompatible", refused.Message, StringComparison.Ordinal);
        Assert.Contains(errorType, refused.Message, StringComparison.Ordinal);
        Assert.Equal([1], await client.GetSubjectVersionsAsync("orders-value"));
    }

    [Fact]
    public async Task CompatibilityEndpoint_ForAVersion_AnswersIsCompatibleWithMessages()
    {
        using var registry = EmbeddedSchemaRegistry.Start();
        registry.RegisterSchema("orders-value", OrderV1);
        using var http = new HttpClient { BaseAddress = new Uri(registry.Url) };

        var incompatible = await PostAsync(http, "/compatibility/subjects/orders-value/versions/1", OrderIdStringToInt);
        var compatible = await PostAsync(http, "/compatibility/subjects/orders-value/versions/latest", OrderV2WithDefault);

        Assert.Equal(HttpStatusCode.OK, incompatible.Status);
        Assert.Contains("\"is_compatible\":false", incompatible.Body, StringComparison.Ordinal);
        Assert.Contains("TYPE_MISMATCH", incompatible.Body, StringComparison.Ordinal);
        Assert.Equal("""{"is_compatible":true,"messages":[]}""", compatible.Body);
    }

    [Theory]
    // BACKWARD: the new schema reads the old data. A field removed is fine; promotions go one way only.
    [InlineData("BACKWARD", """[{"name":"a","type":"int"},{"name":"b","type":"string"}]""", """[{"name":"a","type":"int"}]""", true)]
    [InlineData("BACKWARD", """[{"name":"a","type":"int"}]""", """[{"name":"a","type":"long"}]""", true)]
    [InlineData("BACKWARD", """[{"name":"a","type":"long"}]""", """[{"name":"a","type":"int"}]""", false)]
    [InlineData("BACKWARD", """[{"name":"a","type":"string"}]""", """[{"name":"a","type":"bytes"}]""", true)]
    [InlineData("BACKWARD", """[{"name":"a","type":"int"}]""", """[{"name":"a","type":["null","int"]}]""", true)]
    [InlineData("BACKWARD", """[{"name":"a","type":["null","int"]}]""", """[{"name":"a","type":"int"}]""", false)]
    [InlineData("BACKWARD", """[{"name":"a","type":{"type":"enum","name":"E","symbols":["X","Y"]}}]""", """[{"name":"a","type":{"type":"enum","name":"E","symbols":["X"]}}]""", false)]
    [InlineData("BACKWARD", """[{"name":"a","type":{"type":"enum","name":"E","symbols":["X"]}}]""", """[{"name":"a","type":{"type":"enum","name":"E","symbols":["X","Y"]}}]""", true)]
    [InlineData("BACKWARD", """[{"name":"a","type":{"type":"fixed","name":"F","size":4}}]""", """[{"name":"a","type":{"type":"fixed","name":"F","size":8}}]""", false)]
    [InlineData("BACKWARD", """[{"name":"a","type":{"type":"fixed","name":"F","size":4}}]""", """[{"name":"a","type":{"type":"fixed","name":"G","size":4}}]""", false)]
    [InlineData("BACKWARD", """[{"name":"a","type":{"type":"array","items":"int"}}]""", """[{"name":"a","type":{"type":"array","items":"double"}}]""", true)]
    [InlineData("BACKWARD", """[{"name":"a","type":{"type":"map","values":"string"}}]""", """[{"name":"a","type":{"type":"map","values":"int"}}]""", false)]
    [InlineData("BACKWARD", """[{"name":"a","type":"int"}]""", """[{"name":"b","aliases":["a"],"type":"int"}]""", true)]
    // FORWARD: the old schema reads the new data. Removing a field without a default breaks old readers.
    [InlineData("FORWARD", """[{"name":"a","type":"int"},{"name":"b","type":"string"}]""", """[{"name":"a","type":"int"}]""", false)]
    [InlineData("FORWARD", """[{"name":"a","type":"int"}]""", """[{"name":"a","type":"int"},{"name":"b","type":"string"}]""", true)]
    // FULL: both ways.
    [InlineData("FULL", """[{"name":"a","type":"int"}]""", """[{"name":"a","type":"int"},{"name":"b","type":"string"}]""", false)]
    [InlineData("FULL", """[{"name":"a","type":"int"}]""", """[{"name":"a","type":"int"},{"name":"b","type":"string","default":""}]""", true)]
    // NONE: anything.
    [InlineData("NONE", """[{"name":"a","type":"int"}]""", """[{"name":"a","type":"string"}]""", true)]
    public async Task AvroLevels_ChangeFromOldToNew_CompatibleAsTheSpecificationSays(string level, string oldFields, string newFields, bool compatible)
    {
        using var registry = EmbeddedSchemaRegistry.Start();
        using var client = NewClient(registry);
        Assert.Equal(Enum.Parse<Compatibility>(level, ignoreCase: true), await client.UpdateCompatibilityAsync(Enum.Parse<Compatibility>(level, ignoreCase: true), "s"));
        registry.RegisterSchema("s", Record(oldFields));

        Assert.Equal(compatible, await client.IsCompatibleAsync("s", new Schema(Record(newFields), SchemaType.Avro)));
        if (compatible)
        {
            Assert.Equal(2, (await client.RegisterSchemaWithResponseAsync("s", new Schema(Record(newFields), SchemaType.Avro))).Version);
        }
        else
        {
            Assert.Equal(409, (await Assert.ThrowsAsync<SchemaRegistryException>(() => client.RegisterSchemaAsync("s", new Schema(Record(newFields), SchemaType.Avro)))).ErrorCode);
        }
    }

    [Theory]
    [InlineData(Compatibility.Backward, true)]
    [InlineData(Compatibility.BackwardTransitive, false)]
    public async Task AvroTransitive_ChecksEveryVersion_NotOnlyTheLatest(Compatibility level, bool v3Accepted)
    {
        using var registry = EmbeddedSchemaRegistry.Start();
        using var client = NewClient(registry);
        await client.UpdateCompatibilityAsync(level);
        registry.RegisterSchema("s", Record("""[{"name":"a","type":"int"}]"""));
        registry.RegisterSchema("s", Record("""[{"name":"a","type":"int"},{"name":"b","type":"int","default":0}]"""));

        // v3 reads v2's data (b is there) but not v1's (b is missing and has no default any more).
        var v3 = Record("""[{"name":"a","type":"int"},{"name":"b","type":"int"}]""");

        if (v3Accepted)
        {
            Assert.Equal(3, (await client.RegisterSchemaWithResponseAsync("s", new Schema(v3, SchemaType.Avro))).Version);
        }
        else
        {
            Assert.Equal(409, (await Assert.ThrowsAsync<SchemaRegistryException>(() => client.RegisterSchemaAsync("s", new Schema(v3, SchemaType.Avro)))).ErrorCode);
        }
    }

    [Fact]
    public async Task Config_GlobalAndPerSubject_AsTheClientSeesThem()
    {
        using var registry = EmbeddedSchemaRegistry.Start();
        using var client = NewClient(registry);

        Assert.Equal(Compatibility.Backward, await client.GetCompatibilityAsync());
        var unset = await Assert.ThrowsAsync<SchemaRegistryException>(() => client.GetCompatibilityAsync("orders-value"));
        Assert.Equal(40408, unset.ErrorCode);

        Assert.Equal(Compatibility.Full, await client.UpdateCompatibilityAsync(Compatibility.Full, "orders-value"));
        Assert.Equal(Compatibility.None, await client.UpdateCompatibilityAsync(Compatibility.None));

        Assert.Equal(Compatibility.Full, await client.GetCompatibilityAsync("orders-value"));
        Assert.Equal(Compatibility.None, await client.GetCompatibilityAsync());
    }

    [Fact]
    public async Task UnknownIdSubjectAndVersion_ThrowTheRegistryErrorCodes()
    {
        using var registry = EmbeddedSchemaRegistry.Start();
        using var client = NewClient(registry);
        registry.RegisterSchema("orders-value", OrderV1);

        var unknownId = await Assert.ThrowsAsync<SchemaRegistryException>(() => client.GetSchemaAsync(42));
        var unknownSubject = await Assert.ThrowsAsync<SchemaRegistryException>(() => client.GetLatestSchemaAsync("nobody-value"));
        var unknownVersion = await Assert.ThrowsAsync<SchemaRegistryException>(() => client.GetRegisteredSchemaAsync("orders-value", 7));
        var notUnderSubject = await Assert.ThrowsAsync<SchemaRegistryException>(() => client.LookupSchemaAsync("orders-value", new Schema(OrderV2WithDefault, SchemaType.Avro), ignoreDeletedSchemas: true));

        Assert.Equal((HttpStatusCode.NotFound, 40403), (unknownId.Status, unknownId.ErrorCode));
        Assert.Equal((HttpStatusCode.NotFound, 40401), (unknownSubject.Status, unknownSubject.ErrorCode));
        Assert.Equal((HttpStatusCode.NotFound, 40402), (unknownVersion.Status, unknownVersion.ErrorCode));
        Assert.Equal((HttpStatusCode.NotFound, 40403), (notUnderSubject.Status, notUnderSubject.ErrorCode));
    }

    [Theory]
    [InlineData("""{"type":"record","name":"Order","fields":[{"name":"id","type":"nosuchtype"}]}""", SchemaType.Avro)]
    [InlineData("""{"type":"record" """, SchemaType.Avro)]
    [InlineData("""{"type": "object", "properties": """, SchemaType.Json)]
    public async Task InvalidSchema_RefusedWith422_42201(string schema, SchemaType type)
    {
        using var registry = EmbeddedSchemaRegistry.Start();
        using var client = NewClient(registry);

        var refused = await Assert.ThrowsAsync<SchemaRegistryException>(() => client.RegisterSchemaAsync("s", new Schema(schema, type)));

        Assert.Equal(((HttpStatusCode)422, 42201), (refused.Status, refused.ErrorCode));
        Assert.Throws<ArgumentException>(() => registry.RegisterSchema("s", schema, type == SchemaType.Json ? "JSON" : "AVRO"));
    }

    [Fact]
    public async Task JsonAndProtobufSchemas_StoredWithTheirType_AndNotCheckedForCompatibility()
    {
        using var registry = EmbeddedSchemaRegistry.Start();
        using var client = NewClient(registry);
        const string v1 = """{"type":"object","properties":{"id":{"type":"string"}},"required":["id"]}""";
        const string v2 = """{"type":"object","properties":{"id":{"type":"integer"}},"required":["id","other"]}""";
        const string proto = """syntax = "proto3"; package shop; message Order { string id = 1; }""";

        var id1 = await client.RegisterSchemaAsync("json-value", new Schema(v1, SchemaType.Json));
        var id2 = await client.RegisterSchemaAsync("json-value", new Schema(v2, SchemaType.Json));
        var protoId = await client.RegisterSchemaAsync("proto-value", new Schema(proto, SchemaType.Protobuf));

        Assert.Equal([1, 2], await client.GetSubjectVersionsAsync("json-value"));
        Assert.Equal(SchemaType.Json, (await client.GetSchemaAsync(id2)).SchemaType);
        Assert.Equal((SchemaType.Protobuf, proto), ((await client.GetSchemaAsync(protoId)).SchemaType, (await client.GetSchemaAsync(protoId)).SchemaString));
        Assert.NotEqual(id1, id2);
        // A JSON schema whose text differs only in whitespace is the same schema.
        Assert.Equal(id1, registry.RegisterSchema("json-value", v1.Replace(",", ", ", StringComparison.Ordinal), "json"));
    }

    [Fact]
    public async Task AvroSerdes_GenericRecordRoundTrip_ThroughTheRegistry()
    {
        using var registry = EmbeddedSchemaRegistry.Start();
        using var client = NewClient(registry);
        var schema = (RecordSchema)Avro.Schema.Parse(OrderV1);
        var record = new GenericRecord(schema);
        record.Add("id", "order-1");
        record.Add("quantity", 3);
        var context = new SerializationContext(MessageComponentType.Value, "orders");

        var bytes = await new AvroSerializer<GenericRecord>(client).SerializeAsync(record, context);
        var read = await new AvroDeserializer<GenericRecord>(client).DeserializeAsync(bytes, isNull: false, context);

        Assert.Equal(0, bytes[0]); // Confluent's wire format: magic byte, then the schema id
        var id = (await client.GetLatestSchemaAsync("orders-value")).Id;
        Assert.Equal(id, System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(1, 4)));
        Assert.Equal(("order-1", 3), ((string)read["id"], (int)read["quantity"]));
    }

    [Fact]
    public async Task JsonSerdes_RoundTrip_ThroughTheRegistry()
    {
        using var registry = EmbeddedSchemaRegistry.Start();
        using var client = NewClient(registry);
        var context = new SerializationContext(MessageComponentType.Value, "payments");

        var bytes = await new JsonSerializer<Payment>(client).SerializeAsync(new Payment { PaymentId = "p-1", Cents = 1250 }, context);
        var read = await new JsonDeserializer<Payment>(client).DeserializeAsync(bytes, isNull: false, context);

        Assert.Equal(("p-1", 1250), (read.PaymentId, read.Cents));
        var registered = await client.GetLatestSchemaAsync("payments-value");
        Assert.Equal(SchemaType.Json, registered.SchemaType);
        Assert.Equal(registered.Id, System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(1, 4)));
    }

    [Fact]
    public async Task RequestCount_SecondDeserializeOfTheSameId_IsServedFromTheClientCache()
    {
        using var registry = EmbeddedSchemaRegistry.Start();
        using var client = NewClient(registry);
        var schema = (RecordSchema)Avro.Schema.Parse(OrderV1);
        var record = new GenericRecord(schema);
        record.Add("id", "order-1");
        record.Add("quantity", 3);
        var context = new SerializationContext(MessageComponentType.Value, "orders");
        var bytes = await new AvroSerializer<GenericRecord>(client).SerializeAsync(record, context);
        var deserializer = new AvroDeserializer<GenericRecord>(client);

        await deserializer.DeserializeAsync(bytes, isNull: false, context);
        var afterFirst = registry.RequestCount;
        await deserializer.DeserializeAsync(bytes, isNull: false, context);

        Assert.Equal(afterFirst, registry.RequestCount);
        await new AvroDeserializer<GenericRecord>(client).DeserializeAsync(bytes, isNull: false, context);
        // A new deserializer on the same client may look its subject up again, but the schema comes from the client's cache.
        Assert.Single(registry.GetRequests(), r => r.StartsWith("GET /schemas/ids/", StringComparison.Ordinal));
        Assert.Single(registry.GetRequests(), r => r.StartsWith("POST /subjects/orders-value/versions", StringComparison.Ordinal));
        Assert.Equal(registry.GetRequests().Count, registry.RequestCount);
    }

    [Fact]
    public async Task SetAvailable_False_ClientCallFailsWith503AfterItsRetries_ThenTrue_WorksAgainOnTheSamePort()
    {
        using var registry = EmbeddedSchemaRegistry.Start();
        var id = registry.RegisterSchema("orders-value", OrderV1);
        using var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url, MaxRetries = 2, RetriesWaitMs = 1, RetriesMaxWaitMs = 1 });
        var url = registry.Url;

        registry.SetAvailable(false);
        Assert.False(registry.IsAvailable);
        var failed = await Assert.ThrowsAsync<SchemaRegistryException>(() => client.GetSchemaAsync(id));

        // 503 is retriable for Confluent.SchemaRegistry 2.16.0: it sent MaxRetries requests, then threw a
        // SchemaRegistryException (an HttpRequestException) carrying the status and the registry's error code.
        Assert.Equal((HttpStatusCode.ServiceUnavailable, 50003), (failed.Status, failed.ErrorCode));
        Assert.Equal([$"GET /schemas/ids/{id}", $"GET /schemas/ids/{id}"], registry.GetRequests());

        registry.SetAvailable(true);
        Assert.True(registry.IsAvailable);
        Assert.Equal(url, registry.Url);
        Assert.Equal(OrderV1, (await client.GetSchemaAsync(id)).SchemaString); // the failure was not cached
        Assert.Equal(3, registry.RequestCount);
    }

    [Fact]
    public async Task SetLatency_LongerThanTheClientTimeout_FailsTheCall_ThenZero_Works()
    {
        using var registry = EmbeddedSchemaRegistry.Start();
        var id = registry.RegisterSchema("orders-value", OrderV1);
        using var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url, MaxRetries = 1, RetriesWaitMs = 1, RequestTimeoutMs = 200 });

        registry.SetLatency(TimeSpan.FromMinutes(10));
        await Assert.ThrowsAsync<HttpRequestException>(() => client.GetSchemaAsync(id));

        registry.SetLatency(TimeSpan.Zero);
        Assert.Equal(OrderV1, (await client.GetSchemaAsync(id)).SchemaString);
    }

    [Fact]
    public async Task RawHttp_ErrorsAreRegistryJson_DeleteSubjectRemovesItsVersions_IdsStayReadable()
    {
        using var registry = EmbeddedSchemaRegistry.Start();
        var id = registry.RegisterSchema("orders-value", OrderV1);
        using var http = new HttpClient { BaseAddress = new Uri(registry.Url) };

        using var missing = await http.GetAsync(new Uri("/subjects/nobody/versions", UriKind.Relative), Token);
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Equal("application/vnd.schemaregistry.v1+json", missing.Content.Headers.ContentType?.MediaType);
        Assert.Equal("""{"error_code":40401,"message":"Subject 'nobody' not found."}""", await missing.Content.ReadAsStringAsync(Token));

        using var badVersion = await http.GetAsync(new Uri("/subjects/orders-value/versions/zero", UriKind.Relative), Token);
        Assert.Equal((HttpStatusCode)422, badVersion.StatusCode);
        Assert.Contains("42202", await badVersion.Content.ReadAsStringAsync(Token), StringComparison.Ordinal);

        using var deleted = await http.DeleteAsync(new Uri("/subjects/orders-value", UriKind.Relative), Token);
        Assert.Equal("[1]", await deleted.Content.ReadAsStringAsync(Token));
        Assert.Equal("[]", await http.GetStringAsync(new Uri("/subjects", UriKind.Relative), Token));
        using (var byId = System.Text.Json.JsonDocument.Parse(await http.GetStringAsync(new Uri($"/schemas/ids/{id}", UriKind.Relative), Token)))
        {
            Assert.Equal(OrderV1, byId.RootElement.GetProperty("schema").GetString());
            Assert.False(byId.RootElement.TryGetProperty("schemaType", out _)); // left out for Avro, like the registry
        }


        // Version numbers are not reused after a deletion; the id of the same schema is.
        Assert.Equal(id, registry.RegisterSchema("orders-value", OrderV1));
        Assert.Equal("[2]", await http.GetStringAsync(new Uri("/subjects/orders-value/versions", UriKind.Relative), Token));
        Assert.Equal(6, registry.RequestCount);
    }

    [Fact]
    public async Task RawHttp_VersionsOfAnId_CompatibilityAgainstAllVersions_SubjectLevelConfig_DeleteOneVersion()
    {
        using var registry = EmbeddedSchemaRegistry.Start();
        var id = registry.RegisterSchema("orders-value", OrderV1);
        registry.RegisterSchema("archive-value", OrderV1);
        registry.RegisterSchema("orders-value", OrderV2WithDefault);
        using var http = new HttpClient { BaseAddress = new Uri(registry.Url) };

        Assert.Equal(
            """[{"subject":"archive-value","version":1},{"subject":"orders-value","version":1}]""",
            await http.GetStringAsync(new Uri($"/schemas/ids/{id}/versions", UriKind.Relative), Token));
        Assert.Equal("""["archive-value","orders-value"]""", await http.GetStringAsync(new Uri($"/schemas/ids/{id}/subjects", UriKind.Relative), Token));

        // Against every version the level names: BACKWARD is the latest only, so dropping "note" is fine ...
        Assert.Contains("\"is_compatible\":true", (await PostAsync(http, "/compatibility/subjects/orders-value/versions", OrderV1)).Body, StringComparison.Ordinal);
        // ... FORWARD_TRANSITIVE asks whether every version reads the new data: an added field is ignored by the old
        // readers, a changed type is not.
        using (var put = new StringContent("""{"compatibility":"FORWARD_TRANSITIVE"}""", Encoding.UTF8, "application/vnd.schemaregistry.v1+json"))
        using (var response = await http.PutAsync(new Uri("/config/orders-value", UriKind.Relative), put, Token))
        {
            Assert.Equal("""{"compatibility":"FORWARD_TRANSITIVE"}""", await response.Content.ReadAsStringAsync(Token));
        }

        Assert.Contains("\"is_compatible\":true", (await PostAsync(http, "/compatibility/subjects/orders-value/versions", OrderAddedFieldWithoutDefault)).Body, StringComparison.Ordinal);
        Assert.Contains("\"is_compatible\":false", (await PostAsync(http, "/compatibility/subjects/orders-value/versions", OrderIdStringToInt)).Body, StringComparison.Ordinal);
        Assert.Equal("""{"compatibilityLevel":"FORWARD_TRANSITIVE"}""", await http.GetStringAsync(new Uri("/config/orders-value", UriKind.Relative), Token));
        Assert.Equal("""{"compatibilityLevel":"BACKWARD"}""", await http.GetStringAsync(new Uri("/config/archive-value?defaultToGlobal=true", UriKind.Relative), Token));

        using (var deleted = await http.DeleteAsync(new Uri("/subjects/orders-value/versions/latest", UriKind.Relative), Token))
        {
            Assert.Equal("2", await deleted.Content.ReadAsStringAsync(Token));
        }

        Assert.Equal("[1]", await http.GetStringAsync(new Uri("/subjects/orders-value/versions", UriKind.Relative), Token));
        using var wrongMethod = await http.DeleteAsync(new Uri("/schemas/types", UriKind.Relative), Token);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, wrongMethod.StatusCode);
    }

    [Fact]
    public async Task RegisterSchema_TestControl_RefusesLikeTheRegistry()
    {
        using var registry = EmbeddedSchemaRegistry.Start();
        registry.SetAvailable(false);

        var id = registry.RegisterSchema("orders-value", OrderV1); // works while unavailable: no HTTP involved

        Assert.Equal(id, registry.RegisterSchema("orders-value", OrderV1));
        Assert.Throws<InvalidOperationException>(() => registry.RegisterSchema("orders-value", OrderIdStringToInt));
        Assert.Throws<ArgumentException>(() => registry.RegisterSchema("orders-value", OrderV1, "XML"));
        Assert.Throws<ArgumentException>(() => registry.RegisterSchema(" ", OrderV1));
        Assert.Equal(0, registry.RequestCount);
        registry.SetAvailable(true);
        using var client = NewClient(registry);
        Assert.Equal(OrderV1, (await client.GetSchemaAsync(id)).SchemaString);
    }

    [Fact]
    public void Dispose_Twice_IsHarmless_AndLaterControlsThrowObjectDisposed()
    {
        var registry = EmbeddedSchemaRegistry.Start();
        registry.Dispose();
        registry.Dispose();

        Assert.Throws<ObjectDisposedException>(() => registry.SetAvailable(false));
        Assert.Throws<ObjectDisposedException>(() => registry.SetLatency(TimeSpan.Zero));
        Assert.Throws<ObjectDisposedException>(() => registry.RegisterSchema("s", OrderV1));
        Assert.Throws<ArgumentOutOfRangeException>(() => registry.SetLatency(TimeSpan.FromSeconds(-1)));
    }

    private static CachedSchemaRegistryClient NewClient(EmbeddedSchemaRegistry registry)
        => new(new SchemaRegistryConfig { Url = registry.Url, MaxRetries = 1, RetriesWaitMs = 1 });

    private static string Record(string fields) => $$"""{"type":"record","name":"R","namespace":"test","fields":{{fields}}}""";

    private static async Task<(HttpStatusCode Status, string Body)> PostAsync(HttpClient http, string path, string avroSchema)
    {
        var body = System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, string> { ["schema"] = avroSchema });
        using var content = new StringContent(body, Encoding.UTF8, "application/vnd.schemaregistry.v1+json");
        using var response = await http.PostAsync(new Uri(path, UriKind.Relative), content, Token);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(Token));
    }

    public sealed class Payment
    {
        public string PaymentId { get; set; } = string.Empty;

        public long Cents { get; set; }
    }
}
