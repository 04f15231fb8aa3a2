"""Reading `pulumi.Config` into checked values, collecting every problem instead of stopping.

Shared by settings.py and the GPU-pool providers (components/gpu_pools/), which read their own
keys: a problem names the key, the bad value and the rule.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import pulumi
import yaml

_T = TypeVar("_T")

_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?:(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)|[eE](?P<exponent>[+-]?\d+))?$"
)
_SUFFIX_FACTORS: Mapping[str, Fraction] = {
    "": Fraction(1),
    "m": Fraction(1, 1000),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    **{s: Fraction(1024**i) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"), 1)},
}
DNS_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$")
LABEL_KEY = re.compile(
    r"^(?:[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?/)?[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$"
)
DIGEST_PINNED_IMAGE = re.compile(r"^[a-z0-9.:/_-]+(?::[A-Za-z0-9_.-]+)?@sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Quantity:
    """A Kubernetes resource quantity: the text as written and its exact value."""

    text: str
    value: Fraction

    @classmethod
    def parse(cls, text: str) -> Quantity | None:
        match = _QUANTITY.match(text)
        if match is None:
            return None
        value = Fraction(match["number"])
        if match["exponent"] is not None:
            value *= Fraction(10) ** int(match["exponent"])
        return cls(text, value * _SUFFIX_FACTORS[match["suffix"] or ""])


class ConfigError(Exception):
    """Every problem found in the stack's configuration, one per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid stack configuration ({len(problems)} problems):\n{listing}")


class Reader:
    """Reads raw config values, recording a problem (and returning a placeholder) on bad input."""

    def __init__(self, config: pulumi.Config) -> None:
        self._config = config
        self.problems: list[str] = []

    def problem(self, key: str, value: object, rule: str) -> None:
        shown = json.dumps(value) if isinstance(value, str) else repr(value)
        self.problems.append(f"{self._config.full_key(key)} = {shown}: {rule}")

    def _raw(self, key: str) -> str | None:
        value = self._config.get(key)
        if value is None:
            self.problems.append(
                f"{self._config.full_key(key)} is not set: declare it with a default in Pulumi.yaml"
            )
        return value

    def text(self, key: str, pattern: re.Pattern[str] | None = None, rule: str = "") -> str:
        value = self._raw(key)
        if value is None:
            return ""
        if pattern is not None and not pattern.match(value):
            self.problem(key, value, rule)
        return value

    def optional_text(
        self, key: str, pattern: re.Pattern[str] | None = None, rule: str = ""
    ) -> str | None:
        """A value that may be left empty (unset); when set, it must match `pattern`."""
        value = self.text(key)
        if not value:
            return None
        if pattern is not None and not pattern.match(value):
            self.problem(key, value, rule)
        return value

    def choice(self, key: str, options: tuple[_T, ...]) -> _T:
        value = self._raw(key)
        for option in options:
            if value == option:
                return option
        if value is not None:
            self.problem(key, value, "must be one of " + ", ".join(map(str, options)))
        return options[0]

    def integer(self, key: str, minimum: int | None = None, maximum: int | None = None) -> int:
        value = self._raw(key)
        if value is None:
            return minimum or 0
        try:
            number = int(value.strip())
        except ValueError:
            self.problem(key, value, "must be an integer")
            return minimum or 0
        if minimum is not None and number < minimum:
            self.problem(key, number, f"must be ≥ {minimum}")
        elif maximum is not None and number > maximum:
            self.problem(key, number, f"must be ≤ {maximum}")
        return number

    def fraction(self, key: str) -> float:
        """A ratio strictly between 0 and 1, such as 0.01 for 1 %."""
        value = self._raw(key)
        if value is None:
            return 0.0
        try:
            number = float(value.strip())
        except ValueError:
            self.problem(key, value, "must be a number such as 0.01")
            return 0.0
        if not 0 < number < 1:  # NaN and infinities too
            self.problem(key, number, "must be between 0 and 1, such as 0.01 for 1 %")
        return number

    def number(self, key: str, minimum: float, maximum: float) -> float:
        """A decimal number in [minimum, maximum], written as a string (Pulumi's project config
        has no number type but integer)."""
        value = self._raw(key)
        if value is None:
            return minimum
        try:
            number = float(value.strip())
        except ValueError:
            self.problem(key, value, "must be a number such as 2.0")
            return minimum
        if not minimum <= number <= maximum:  # NaN and infinities too
            self.problem(key, number, f"must be between {minimum} and {maximum}")
        return number

    def _list(self, key: str, is_item: Callable[[object], bool], kind: str) -> tuple[Any, ...]:
        """A JSON list whose every item passes `is_item`, or () with a problem."""
        value = self._raw(key)
        if value is None:
            return ()
        try:
            items = json.loads(value)
        except json.JSONDecodeError:
            items = None
        if not isinstance(items, list) or not all(is_item(i) for i in items):
            self.problem(key, value, f"must be a list of {kind}")
            return ()
        return tuple(items)

    def integers(self, key: str, minimum: int, maximum: int) -> tuple[int, ...]:
        """A list of integers, each in [minimum, maximum]."""
        # bool is an int to Python, not to whoever wrote `true` in a stack file.
        items = self._list(
            key, lambda i: isinstance(i, int) and not isinstance(i, bool), "integers"
        )
        for item in items:
            if not minimum <= item <= maximum:
                self.problem(key, item, f"must be between {minimum} and {maximum}")
        return items

    def boolean(self, key: str) -> bool:
        value = self._raw(key)
        if value is None:
            return False
        if value.lower() not in ("true", "false"):
            self.problem(key, value, "must be true or false")
        return value.lower() == "true"

    def strings(
        self, key: str, check: Callable[[str], bool] | None = None, rule: str = ""
    ) -> tuple[str, ...]:
        items = self._list(key, lambda i: isinstance(i, str), "strings")
        for item in items:
            if check is not None and not check(item):
                self.problem(key, item, rule)
        return items

    def labels(self, key: str) -> dict[str, str]:
        """A map of Kubernetes label keys to label values."""
        value = self._raw(key)
        if value is None:
            return {}
        try:
            labels = json.loads(value)
        except json.JSONDecodeError:
            labels = None
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            self.problem(key, value, "must be a map of label keys to string values")
            return {}
        for label_key, label_value in labels.items():
            if not LABEL_KEY.match(label_key):
                self.problem(key, label_key, "must be a Kubernetes label key")
            if not LABEL_VALUE.match(label_value):
                self.problem(key, label_value, "must be a Kubernetes label value")
        return labels

    def quantity(self, key: str, what: str) -> Quantity:
        value = self._raw(key)
        if value is None:
            return Quantity("0", Fraction(0))
        quantity = Quantity.parse(value)
        if quantity is None:
            self.problem(
                key,
                value,
                f"must be a Kubernetes {what} quantity such as "
                + ('"500m" or "2"' if what == "CPU" else '"512Mi" or "2Gi"'),
            )
            return Quantity(value, Fraction(0))
        if quantity.value <= 0:
            self.problem(key, value, f"must be a positive {what} quantity")
        return quantity

    def secret(self, key: str) -> pulumi.Output[str] | None:
        return self._config.get_secret(key)


def is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=True)
    except ValueError:
        return False
    return True


def config_text(value: object) -> str:
    """A config value as the engine hands it to the program."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def declared_config(project_file: Path, stack_file: Path) -> dict[str, str]:
    """The config a program of this project sees for a stack, as the engine hands it over:
    Pulumi.yaml's declared defaults overlaid with the stack file's values."""
    project = yaml.safe_load(project_file.read_text())
    name = project["name"]
    values: dict[str, object] = {
        f"{name}:{key}": spec["default"]
        for key, spec in project["config"].items()
        if "default" in spec
    }
    values.update((yaml.safe_load(stack_file.read_text()) or {}).get("config") or {})
    return {key: config_text(value) for key, value in values.items()}
