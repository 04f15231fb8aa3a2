"""The contract one stack serves: which model, version and signature, and every signature of
that version. The program declares it (a ConfigMap and a stack output); the policy pack and the
PR comment read it back from there, so its encoding lives here once."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from model_contract.diff import fingerprint
from model_contract.saved_model import Signature

CONFIG_MAP_COMPONENT = "model-contract"
"""The `app.kubernetes.io/component` label of the contract's ConfigMap."""
ACCEPT_BREAKING_ANNOTATION = "gpu-model-serving/accept-breaking-contract"
"""On the ConfigMap: the fingerprint of a breaking contract the stack accepts
(stack key modelContractAcceptBreaking)."""
SIGNATURES_KEY = "signatures.json"
# On the Deployment, which copies them onto each ReplicaSet: the cluster's rollout history says
# which model version each revision served (engine/rollback.py reads it).
MODEL_VERSION_ANNOTATION = "gpu-model-serving/model-version"
CONTRACT_ANNOTATION = "gpu-model-serving/model-contract"


@dataclass(frozen=True)
class Contract:
    model: str
    version: int
    signature: str
    """The signature a request without `signature_name` gets."""
    signatures: Mapping[str, Signature]

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.signatures)

    def config_map_data(self) -> dict[str, str]:
        """Indented JSON, so that a preview's diff of the ConfigMap shows the lines that
        changed."""
        return {
            "model": self.model,
            "version": str(self.version),
            "signature": self.signature,
            "fingerprint": self.fingerprint,
            SIGNATURES_KEY: json.dumps(self.signatures, indent=2, sort_keys=True) + "\n",
        }

    def output(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "signature": self.signature,
            "fingerprint": self.fingerprint,
            "signatures": self.signatures,
        }

    @classmethod
    def from_config_map_data(cls, data: Mapping[str, Any]) -> Contract:
        """Raises ValueError when `data` is not a contract's."""
        try:
            return cls(
                model=str(data["model"]),
                version=int(data["version"]),
                signature=str(data["signature"]),
                signatures=json.loads(data[SIGNATURES_KEY]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not a model contract ({error!r})") from None

    @classmethod
    def from_output(cls, value: Mapping[str, Any]) -> Contract:
        """Raises ValueError when `value` is not a contract's stack output."""
        try:
            return cls(
                model=str(value["model"]),
                version=int(value["version"]),
                signature=str(value["signature"]),
                signatures=_whole_numbers(dict(value["signatures"])),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not a model contract ({error!r})") from None


def _whole_numbers(value: Any) -> Any:
    """`value` with whole floats as ints: a stack output read back through the engine, or handed
    to a policy as a protobuf Struct, carries dimensions as floats (784.0), which would print
    and fingerprint differently."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_whole_numbers(item) for item in value]
    return value
