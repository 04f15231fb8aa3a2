// Stand-in for github.com/pulumi/pulumi-dotnet/pulumi-language-dotnet/v3, which the Go module
// proxy reachable here refuses (403). pulumi-docker-build's provider only uses
// codegen.CSharpPackageInfo as the C# entry of its schema's language map.
module github.com/pulumi/pulumi-dotnet/pulumi-language-dotnet/v3

go 1.26.0
