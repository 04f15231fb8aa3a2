"""The Pulumi program's own code, in the order a stack is built from its config:

    config_reader     reading config keys into checked values, every problem collected
    stack_outputs     the names the stack exports (shared with engine/ and the tests)
    gpu_pools         each GPU pool provider: its settings, catalogue, resources, scheduling
    settings          the whole stack's typed settings, read through the two above
    runtime_profiles  what each serving runtime needs of the image and the pod
    components        the ComponentResources: ModelImage, GpuNodePool, ModelServer

`__main__.py` (the project's entry point, beside Pulumi.yaml) reads the settings and declares
the components. A module imports only modules listed above it (tests/unit/test_layout.py).
"""

LAYERS = (
    "config_reader",
    "stack_outputs",
    "gpu_pools",
    "settings",
    "runtime_profiles",
    "components",
)
