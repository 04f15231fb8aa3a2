// Package java declares the one type pulumi-docker-build's provider uses from Pulumi's Java
// code generator: the Java settings of a package schema's language map. It only affects the
// "language.java" section of the schema the provider reports, never resource behaviour.
package java

// PackageInfo is the Java section of a Pulumi package schema's language map.
type PackageInfo struct {
	BasePackage                     string            `json:"basePackage,omitempty"`
	Packages                        map[string]string `json:"packages,omitempty"`
	Dependencies                    map[string]string `json:"dependencies,omitempty"`
	BuildFiles                      string            `json:"buildFiles,omitempty"`
	GradleNexusPublishPluginVersion string            `json:"gradleNexusPublishPluginVersion,omitempty"`
	GradleTest                      string            `json:"gradleTest,omitempty"`
}
