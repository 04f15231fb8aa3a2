"""The gpu-model-serving component package: serves the components to Pulumi programs in any
language (`pulumi package add <this directory>`); the schema comes from the annotations of
gpu_model_serving/components/plugin.py."""

import sys
from pathlib import Path

# The package lives in the repository, beside this directory.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi.provider.experimental import component_provider_host

from gpu_model_serving import PACKAGE_NAME, PACKAGE_VERSION
from gpu_model_serving.components.plugin import ModelServer

if __name__ == "__main__":
    component_provider_host(name=PACKAGE_NAME, components=[ModelServer], version=PACKAGE_VERSION)
