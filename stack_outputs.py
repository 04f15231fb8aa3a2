"""Names of the stack's outputs, shared by __main__.py, the tests and scripts."""

IMAGE_REF = "imageRef"
IMAGE_DIGEST = "imageDigest"
GPU_POOL_NAME = "gpuPoolName"
NAMESPACE = "namespace"
DEPLOYMENT_NAME = "deploymentName"
SERVICE_NAME = "serviceName"
PREDICT_URL = "predictUrl"
