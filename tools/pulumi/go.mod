// Builds the Pulumi CLI at the version the Python program pins (pulumi==3.272.0).
//
// UNVERIFIED: the Go module proxy reachable here refuses github.com/pulumi/pulumi/pkg/v3 at
// v3.272.0 (and every version after v3.260.0) with "403 This module version is not available",
// so no go.sum could be made and scripts/toolchain.sh reports this tool as not built.
// See tools/README.md. Upstream's pkg/go.mod replaces sdk/v3 => ../sdk (restated as a plain
// require at the same version) and atotto/clipboard (only used on Windows; restated anyway).
module tf-gpu-serving-infra/tools/pulumi

go 1.26.0

tool github.com/pulumi/pulumi/pkg/v3/cmd/pulumi

require (
	github.com/pulumi/pulumi/pkg/v3 v3.272.0
	github.com/pulumi/pulumi/sdk/v3 v3.272.0
)

replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e
