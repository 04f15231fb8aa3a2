// Command pulumi-resource-kubernetes serves Pulumi's Kubernetes provider. Upstream's main
// package embeds two files its release build generates (they are not in the module download),
// so this one embeds the same two, written by scripts/toolchain.sh from the module's
// cmd/pulumi-resource-kubernetes/schema.json (with the pinned version set) and
// terraform-mapping.json.
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var schema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, schema, terraformMapping)
}
