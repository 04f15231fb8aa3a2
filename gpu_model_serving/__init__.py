"""The Pulumi program's own code, each layer importing only the layers before it:

    config_reader       reading config keys into checked values, every problem collected
    stack_outputs       the names the stack exports (shared with engine/ and the tests)
    gpu_pools           each GPU pool provider: its args, catalogue, config reader, resources
    runtime_profiles    what each serving runtime needs of the image and the pod
    components          ModelImage, GpuNodePool, ModelServer: they read no stack config, so any
                        Pulumi program can declare them from their args
    settings            the stack's config, validated, in the components' own value types
    kubernetes_provider the explicit provider the stack's objects go through
    stack_args          the one place settings become the components' args

`__main__.py` (the project's entry point, beside Pulumi.yaml) reads the settings and declares
the components with stack_args. tests/unit/test_layout.py holds every module to LAYERS.
"""

# The components' Pulumi package (provider/): its schema's name, and the plugin's version.
PACKAGE_NAME = "gpu-model-serving"
PACKAGE_VERSION = "0.2.0"  # 0.2.0: gpuAcceleratorType in place of gpuNodeSelector

LAYERS = (
    "config_reader",
    "stack_outputs",
    "gpu_pools",
    "runtime_profiles",
    "components",
    "settings",
    "kubernetes_provider",
    "stack_args",
)
