"""The model's contract: every classification rule of model_contract/diff.py, the fingerprint,
and the Contract's round trips through the ConfigMap and the stack output."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from model_contract.contract import SIGNATURES_KEY, Contract
from model_contract.diff import diff, fingerprint
from model_contract.saved_model import Signature, Tensor

PREDICT = "tensorflow/serving/predict"


def tensor(shape: list[int] | None, dtype: str = "DT_FLOAT", *, default: bool = False) -> Tensor:
    found = Tensor(dtype=dtype, shape=shape)
    if default:
        found["default"] = True
    return found


BOTH_OUTPUTS = {"probabilities": tensor([-1, 10]), "classes": tensor([-1], "DT_INT64")}


def signatures(
    *,
    method: str = PREDICT,
    inputs: dict[str, Tensor] | None = None,
    outputs: dict[str, Tensor] | None = None,
) -> dict[str, Signature]:
    """Two signatures of a digits classifier; the arguments replace serving_default's parts."""
    return {
        "embed": Signature(
            method=PREDICT,
            inputs={"images": tensor([-1, 28, 28])},
            outputs={"embedding": tensor([-1, 64])},
        ),
        "serving_default": Signature(
            method=method,
            inputs={"images": tensor([-1, 28, 28])} if inputs is None else inputs,
            outputs=dict(BOTH_OUTPUTS) if outputs is None else outputs,
        ),
    }


OLD = signatures()

# (case, new signatures, breaking, words the one change's text holds)
CHANGES: list[tuple[str, dict[str, Signature], bool, tuple[str, ...]]] = [
    (
        "removed input",
        signatures(inputs={}),
        True,
        ("`serving_default`", "input `images` removed"),
    ),
    (
        "removed output",
        signatures(outputs=dict(probabilities=tensor([-1, 10]))),
        True,
        ("`serving_default`", "output `classes` removed"),
    ),
    (
        "renamed input",
        signatures(inputs=dict(pixels=tensor([-1, 28, 28]))),
        True,
        ("`serving_default`", "input `images` renamed to `pixels`"),
    ),
    (
        "dtype change",
        signatures(inputs=dict(images=tensor([-1, 28, 28], "DT_UINT8"))),
        True,
        ("`serving_default`", "input `images`", "DT_FLOAT → DT_UINT8"),
    ),
    (
        "fixed dimension changed",
        signatures(inputs=dict(images=tensor([-1, 32, 28]))),
        True,
        ("`serving_default`", "input `images`", "dimension 1 28 → 32"),
    ),
    (
        "rank change",
        signatures(inputs=dict(images=tensor([-1, 28, 28, 1]))),
        True,
        ("`serving_default`", "input `images`", "rank 3 → 4"),
    ),
    (
        "input dimension fixed from any size",
        signatures(inputs=dict(images=tensor([8, 28, 28]))),
        True,
        ("`serving_default`", "input `images`", "dimension 0 fixed from any size to 8"),
    ),
    (
        "input of any rank made fixed",
        signatures(inputs=dict(images=tensor([-1, 28, 28]))),
        True,
        ("`serving_default`", "input `images`", "any rank → [-1, 28, 28]"),
    ),
    (
        "new input without a default",
        signatures(inputs=dict(images=tensor([-1, 28, 28]), mask=tensor([-1], "DT_BOOL"))),
        True,
        ("`serving_default`", "input `mask` added", "without a default"),
    ),
    (
        "an input's default removed",
        signatures(inputs=dict(images=tensor([-1, 28, 28]))),
        True,
        ("`serving_default`", "input `images`", "default removed"),
    ),
    (
        "new input with a default",
        signatures(inputs=dict(images=tensor([-1, 28, 28]), temperature=tensor([], default=True))),
        False,
        ("`serving_default`", "input `temperature` added", "with a default"),
    ),
    (
        "a default added to an input",
        signatures(inputs=dict(images=tensor([-1, 28, 28], default=True))),
        False,
        ("`serving_default`", "input `images`", "a default added"),
    ),
    (
        "new output",
        signatures(outputs=dict(**BOTH_OUTPUTS, logits=tensor([-1, 10]))),
        False,
        ("`serving_default`", "output `logits` added"),
    ),
    (
        "input dimension relaxed to any size",
        signatures(inputs=dict(images=tensor([-1, -1, 28]))),
        False,
        ("`serving_default`", "input `images`", "dimension 1 relaxed from 28 to any size"),
    ),
    (
        "input shape relaxed to any rank",
        signatures(inputs=dict(images=tensor(None))),
        False,
        ("`serving_default`", "input `images`", "relaxed to any rank"),
    ),
    (
        "output dimension fixed from any size",
        signatures(outputs=dict(probabilities=tensor([16, 10]), classes=tensor([-1], "DT_INT64"))),
        False,
        ("`serving_default`", "output `probabilities`", "dimension 0 fixed from any size to 16"),
    ),
    (
        "new signature",
        {**OLD, "classify": OLD["serving_default"]},
        False,
        ("signature `classify` added",),
    ),
    (
        "removed signature",
        {"serving_default": OLD["serving_default"]},
        True,
        ("signature `embed` removed",),
    ),
    (
        "method change",
        signatures(method="tensorflow/serving/classify"),
        True,
        ("`serving_default`", f"method `{PREDICT}` → `tensorflow/serving/classify`"),
    ),
]
# The old side of the cases that do not start from OLD.
OLD_SIDES = {
    "input of any rank made fixed": signatures(inputs=dict(images=tensor(None))),
    "an input's default removed": signatures(
        inputs=dict(images=tensor([-1, 28, 28], default=True))
    ),
}


@pytest.mark.parametrize(
    ("case", "new", "breaking", "words"), CHANGES, ids=[case[0] for case in CHANGES]
)
def test_each_change_is_classified_and_named(
    case: str, new: dict[str, Signature], breaking: bool, words: tuple[str, ...]
) -> None:
    result = diff(OLD_SIDES.get(case, OLD), new)
    [change] = result.changes
    assert change.breaking is breaking
    assert result.verdict == ("breaking" if breaking else "compatible")
    assert result.breaking == ((change,) if breaking else ())
    for word in words:
        assert word in change.text, (word, change.text)


def test_identical_signatures_are_unchanged() -> None:
    result = diff(OLD, copy.deepcopy(OLD))
    assert result.changes == ()
    assert result.verdict == "unchanged"


def test_a_renamed_output_is_breaking_and_names_both_names() -> None:
    new = signatures(outputs=dict(probs=tensor([-1, 10]), classes=tensor([-1], "DT_INT64")))
    [change] = diff(OLD, new).changes
    assert change.breaking
    assert "`serving_default`: output `probabilities` renamed to `probs`" in change.text


def test_one_breaking_change_among_compatible_ones_makes_the_verdict_breaking() -> None:
    new = signatures(
        inputs={"images": tensor([-1, 28, 28], "DT_UINT8")},
        outputs={**BOTH_OUTPUTS, "logits": tensor([-1, 10])},
    )
    new["classify"] = OLD["serving_default"]
    result = diff(OLD, new)
    assert [c.breaking for c in result.changes] == [False, True, False]
    assert result.verdict == "breaking"
    assert [c.text for c in result.breaking] == [
        "`serving_default`: input `images`: dtype DT_FLOAT → DT_UINT8"
    ]


def test_the_fingerprint_is_stable_and_ignores_key_order() -> None:
    reordered = json.loads(json.dumps(OLD), object_pairs_hook=lambda pairs: dict(pairs[::-1]))
    assert list(reordered) == ["serving_default", "embed"]
    assert fingerprint(reordered) == fingerprint(OLD)
    assert fingerprint(OLD) == fingerprint(copy.deepcopy(OLD))
    assert fingerprint(OLD).startswith("sha256:") and len(fingerprint(OLD)) == len("sha256:") + 16


def test_any_change_changes_the_fingerprint() -> None:
    assert fingerprint(signatures(inputs=dict(images=tensor([-1, 28, 28], "DT_UINT8")))) != (
        fingerprint(OLD)
    )
    assert fingerprint(signatures(inputs=dict(images=tensor([-1, -1, 28])))) != fingerprint(OLD)


CONTRACT = Contract(model="digits", version=3, signature="serving_default", signatures=OLD)


def test_a_contract_round_trips_through_the_config_map() -> None:
    data = CONTRACT.config_map_data()
    assert all(isinstance(value, str) for value in data.values())
    assert data["fingerprint"] == CONTRACT.fingerprint == fingerprint(OLD)
    assert Contract.from_config_map_data(data) == CONTRACT


def test_a_contract_round_trips_through_the_stack_output() -> None:
    output = CONTRACT.output()
    assert output["fingerprint"] == CONTRACT.fingerprint
    assert Contract.from_output(output) == CONTRACT
    # As the engine hands a stack output over: JSON.
    assert Contract.from_output(json.loads(json.dumps(output))) == CONTRACT


def test_a_stack_output_with_float_dimensions_reads_as_whole_numbers() -> None:
    # The engine's outputs come back with JSON numbers as floats: 784.0 must still print,
    # compare and fingerprint as 784.
    floated = json.loads(json.dumps(CONTRACT.output()).replace(": -1", ": -1.0"), parse_int=float)
    contract = Contract.from_output(floated)
    assert contract == CONTRACT
    assert contract.fingerprint == CONTRACT.fingerprint
    assert ".0" not in json.dumps(contract.signatures)


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"model": "digits", "version": "3", "signature": "serving_default"},
        {**CONTRACT.config_map_data(), "version": "three"},
        {**CONTRACT.config_map_data(), SIGNATURES_KEY: "{not json"},
        {"kubeconfig": "apiVersion: v1"},
    ],
    ids=["empty", "no signatures", "version not a number", "signatures not JSON", "foreign"],
)
def test_foreign_config_map_data_is_a_value_error(data: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="not a model contract"):
        Contract.from_config_map_data(data)


@pytest.mark.parametrize(
    "value",
    [
        {},
        {"model": "digits", "version": 3, "signature": "serving_default"},
        {**CONTRACT.output(), "version": None},
        {**CONTRACT.output(), "signatures": 7},
        {"imageRef": "registry/model@sha256:ab"},
    ],
    ids=["empty", "no signatures", "no version", "signatures not a mapping", "foreign"],
)
def test_a_foreign_stack_output_is_a_value_error(value: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="not a model contract"):
        Contract.from_output(value)
