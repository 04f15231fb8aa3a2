"""Pulumi ComponentResources of the model serving stack."""
