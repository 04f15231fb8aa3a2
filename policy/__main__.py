"""The policy pack the engine runs on every preview and up (see policy/rules.py for the rules).

Started by the engine in this folder (see engine.environment.install_policy_analyzer); constructing
the PolicyPack serves it on the address the engine passed.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from policy.rules import CONFIG_SCHEMAS, PACK_NAME, RULES, Resource, Rule


def _config_schema(rule: Rule) -> PolicyConfigSchema | None:
    if not rule.config_defaults:
        return None
    return PolicyConfigSchema(
        properties={
            key: {**CONFIG_SCHEMAS[key], "default": default}
            for key, default in rule.config_defaults.items()
        }
    )


def _resource_policy(rule: Rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        resource = Resource(args.resource_type, args.urn, args.props)
        for violation in rule.violations([resource], _config(args.get_config())):
            report(violation.message, None)

    return ResourceValidationPolicy(
        rule.name, rule.description, validate, config_schema=_config_schema(rule)
    )


def _stack_policy(rule: Rule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        resources = [Resource(r.resource_type, r.urn, r.props) for r in args.resources]
        for violation in rule.violations(resources, _config(args.get_config())):
            report(violation.message, violation.urn)

    return StackValidationPolicy(
        rule.name, rule.description, validate, config_schema=_config_schema(rule)
    )


def _config(config: Mapping[str, Any]) -> dict[str, Any]:
    # The engine adds enforcementLevel to each policy's configuration.
    return {key: value for key, value in config.items() if key != "enforcementLevel"}


PolicyPack(
    name=PACK_NAME,
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[
        _resource_policy(rule) if rule.resource_check is not None else _stack_policy(rule)
        for rule in RULES
    ],
)
