"""What a change of contract does to the clients of a model: every difference between two
versions' signatures, each classified (model/README.md and README.md, "The model's contract").

- breaking: a client that worked before may now fail. A signature, input or output removed (a
  rename is a removal beside an addition), a signature's method changed, an input added without
  a default, a dtype changed, a rank changed, a fixed dimension changed, or an input's dimension
  of any size made fixed.
- compatible: every request that worked still works and answers what it did. A signature or
  output added, an input added with a default, a dimension relaxed to any size, an output's
  dimension of any size made fixed.
- unchanged: the same signatures.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from model_contract.saved_model import Signature, Tensor

Verdict = Literal["breaking", "compatible", "unchanged"]
Direction = Literal["input", "output"]


@dataclass(frozen=True)
class Change:
    breaking: bool
    text: str
    """The change in words, naming the signature and tensor."""


@dataclass(frozen=True)
class ContractDiff:
    changes: tuple[Change, ...]

    @property
    def verdict(self) -> Verdict:
        if any(change.breaking for change in self.changes):
            return "breaking"
        return "compatible" if self.changes else "unchanged"

    @property
    def breaking(self) -> tuple[Change, ...]:
        return tuple(change for change in self.changes if change.breaking)


def fingerprint(signatures: Mapping[str, Signature]) -> str:
    """A short, stable name for a set of signatures: what an override of the breaking-change
    rule accepts, so that it cannot also wave through a later, different break."""
    canonical = json.dumps(signatures, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def code(name: str) -> str:
    """`name` as a Markdown code span whatever it holds: names come from the SavedModel, and a
    backtick or a line break in one would end the span (or the line) and let it write Markdown
    into the pull-request comment."""
    return "`" + name.replace("`", "'").replace("\r", " ").replace("\n", " ") + "`"


def describe(tensor: Tensor) -> str:
    shape = "any rank" if tensor["shape"] is None else json.dumps(tensor["shape"])
    return f"{tensor['dtype']} {shape}"


def diff(old: Mapping[str, Signature], new: Mapping[str, Signature]) -> ContractDiff:
    changes: list[Change] = []
    for name in sorted(old.keys() - new.keys()):
        changes.append(Change(True, f"signature {code(name)} removed"))
    for name in sorted(new.keys() - old.keys()):
        changes.append(Change(False, f"signature {code(name)} added"))
    for name in sorted(old.keys() & new.keys()):
        changes.extend(_signature_changes(name, old[name], new[name]))
    return ContractDiff(tuple(changes))


def _signature_changes(name: str, old: Signature, new: Signature) -> Iterator[Change]:
    if old["method"] != new["method"]:
        yield Change(True, f"{code(name)}: method {code(old['method'])} → {code(new['method'])}")
    yield from _tensor_changes(name, "input", old["inputs"], new["inputs"])
    yield from _tensor_changes(name, "output", old["outputs"], new["outputs"])


def _tensor_changes(
    signature: str, direction: Direction, old: Mapping[str, Tensor], new: Mapping[str, Tensor]
) -> Iterator[Change]:
    removed = sorted(old.keys() - new.keys())
    added = sorted(new.keys() - old.keys())
    # A removed and an added tensor of the same dtype and shape read as a rename.
    for old_name in list(removed):
        twin = next((n for n in added if _same_type(old[old_name], new[n])), None)
        if twin is not None:
            removed.remove(old_name)
            added.remove(twin)
            yield Change(
                True,
                f"{code(signature)}: {direction} {code(old_name)} renamed to {code(twin)} "
                f"({describe(old[old_name])}): clients sending the old name fail",
            )
    for tensor in removed:
        yield Change(
            True, f"{code(signature)}: {direction} {code(tensor)} removed ({describe(old[tensor])})"
        )
    for tensor in added:
        text = f"{code(signature)}: {direction} {code(tensor)} added ({describe(new[tensor])})"
        if direction == "input" and not new[tensor].get("default"):
            yield Change(True, text + " without a default: every request must now send it")
        else:
            yield Change(False, text + (" with a default" if direction == "input" else ""))
    for tensor in sorted(old.keys() & new.keys()):
        yield from _type_changes(
            f"{code(signature)}: {direction} {code(tensor)}", direction, old[tensor], new[tensor]
        )


def _same_type(a: Tensor, b: Tensor) -> bool:
    return a["dtype"] == b["dtype"] and a["shape"] == b["shape"]


def _type_changes(where: str, direction: Direction, old: Tensor, new: Tensor) -> Iterator[Change]:
    if old["dtype"] != new["dtype"]:
        yield Change(True, f"{where}: dtype {old['dtype']} → {new['dtype']}")
    if old.get("default") and not new.get("default"):
        yield Change(True, f"{where}: its default removed: every request must now send it")
    elif new.get("default") and not old.get("default"):
        yield Change(False, f"{where}: a default added")
    old_shape, new_shape = old["shape"], new["shape"]
    if old_shape == new_shape:
        return
    if new_shape is None:
        yield Change(False, f"{where}: shape {describe(old)} relaxed to any rank")
    elif old_shape is None:
        yield Change(direction == "input", f"{where}: shape any rank → {json.dumps(new_shape)}")
    elif len(old_shape) != len(new_shape):
        yield Change(
            True,
            f"{where}: rank {len(old_shape)} → {len(new_shape)} "
            f"({json.dumps(old_shape)} → {json.dumps(new_shape)})",
        )
    else:
        for index, (was, now) in enumerate(zip(old_shape, new_shape, strict=True)):
            if was == now:
                continue
            if now == -1:
                yield Change(False, f"{where}: dimension {index} relaxed from {was} to any size")
            elif was == -1:
                yield Change(
                    direction == "input",
                    f"{where}: dimension {index} fixed from any size to {now}",
                )
            else:
                yield Change(True, f"{where}: dimension {index} {was} → {now}")
