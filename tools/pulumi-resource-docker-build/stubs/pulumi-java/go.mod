// Stand-in for github.com/pulumi/pulumi-java, which the Go module proxy reachable here refuses
// (403). pulumi-docker-build's provider only uses java.PackageInfo as the Java entry of its
// schema's language map; this module declares that type and nothing else.
module github.com/pulumi/pulumi-java

go 1.26.0
