"""cdk-nag (v3) acknowledgments: every accepted finding carries its reason.

cdk-nag 3 runs as a CDK policy-validation plugin and takes acknowledgments through
``Validations.of(construct).acknowledge``; findings with several instances (IAM5 wildcards)
are acknowledged one finding at a time as ``RuleId[Finding]``, so nothing broader than the
named finding is ever accepted.
"""

from __future__ import annotations

from collections.abc import Iterable

import aws_cdk as cdk
from constructs import IConstruct


def acknowledge(
    construct: IConstruct, rule: str, reason: str, findings: Iterable[str] = ()
) -> None:
    """Accept ``rule`` on ``construct`` (and its children), or only the named ``findings``."""
    if not reason.strip():
        raise ValueError(f"acknowledging {rule} needs a reason")
    ids = [f"{rule}[{f}]" for f in findings] or [rule]
    cdk.Validations.of(construct).acknowledge(
        *(cdk.Acknowledgment(id=i, reason=reason) for i in ids)
    )
