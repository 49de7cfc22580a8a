namespace Kafka.Reliable.SchemaRegistry.Tests;

public sealed class ProtobufSchemaOutlineTests
{
    [Fact]
    public void FullNameAt_FollowsDeclarationOrder_SkippingEnumsServicesCommentsAndStrings()
    {
        var outline = ProtobufSchemaOutline.TryParse("""
            syntax = "proto3";
            package shop.v1; // message Fake {
            option csharp_namespace = "message Nope {";
            enum Kind { KIND_A = 0; }
            /* message Hidden { } */
            message A { message B { } enum E { X = 0; } message C { map<string, int32> m = 1; message D { } } }
            service S { rpc Get (A) returns (A) { option deprecated = true; } }
            message Z { oneof o { string s = 1; } string message = 2; }
            """)!;

        Assert.Equal("shop.v1", outline.Package);
        Assert.Equal("shop.v1.A", outline.FullNameAt([0]));
        Assert.Equal("shop.v1.A.B", outline.FullNameAt([0, 0]));
        Assert.Equal("shop.v1.A.C", outline.FullNameAt([0, 1]));
        Assert.Equal("shop.v1.A.C.D", outline.FullNameAt([0, 1, 1]));
        Assert.Equal("shop.v1.Z", outline.FullNameAt([1]));
        Assert.Null(outline.FullNameAt([2]));
    }

    [Fact]
    public void FullNameAt_Proto2Group_CountsAsNestedMessage()
    {
        var outline = ProtobufSchemaOutline.TryParse("""
            syntax = "proto2";
            message Search { optional group Result = 1 { optional string url = 2; } message After { } }
            """)!;

        Assert.Equal("Search.Result", outline.FullNameAt([0, 0]));
        Assert.Equal("Search.After", outline.FullNameAt([0, 1]));
    }

    [Theory]
    [InlineData("message A { ")]
    [InlineData("message A { } }")]
    [InlineData("message A { string s = 1 [default = \"unterminated]; }")]
    public void TryParse_TextItCannotFollow_GivesNoOutline(string text) => Assert.Null(ProtobufSchemaOutline.TryParse(text));
}
