"""The explicit Kubernetes provider every Kubernetes object of the stack goes through."""

from __future__ import annotations

import pulumi_kubernetes as k8s

from gpu_model_serving.settings import KubernetesSettings


def kubernetes_provider(name: str, cluster: KubernetesSettings) -> k8s.Provider:
    """A provider for the configured kubeconfig/context, or one that only renders manifests.

    Explicit rather than ambient, so that a stack never applies to whatever cluster the
    operator's shell happens to point at.
    """
    # Rendering names no cluster. An explicit "" (not None) keeps the SDK from filling in
    # $KUBECONFIG, which the provider rejects beside renderYamlToDirectory.
    rendering = cluster.render_yaml_to_directory is not None
    return k8s.Provider(
        name,
        kubeconfig="" if rendering else cluster.kubeconfig,
        context=None if rendering else cluster.context,
        render_yaml_to_directory=cluster.render_yaml_to_directory,
        enable_server_side_apply=True,
        # Objects outside the namespace (the Namespace itself, the EKS device plugin) name
        # their own; everything else lands in the serving namespace.
        namespace=cluster.namespace,
    )
