// Package codegen declares the one type pulumi-docker-build's provider uses from Pulumi's .NET
// code generator: the C# settings of a package schema's language map. It only affects the
// "language.csharp" section of the schema the provider reports, never resource behaviour.
package codegen

// CSharpPackageInfo is the C# section of a Pulumi package schema's language map.
type CSharpPackageInfo struct {
	PackageReferences    map[string]string `json:"packageReferences,omitempty"`
	Namespaces           map[string]string `json:"namespaces,omitempty"`
	RootNamespace        string            `json:"rootNamespace,omitempty"`
	RespectSchemaVersion bool              `json:"respectSchemaVersion,omitempty"`
}
