"""Accepted findings of the two template checkers, each with its reason, next to each other.

* cdk-nag (v3) runs as a CDK policy-validation plugin during synth and takes acknowledgments
  through ``Validations.of(construct).acknowledge``; findings with several instances (IAM5
  wildcards) are acknowledged one finding at a time as ``RuleId[Finding]``, so nothing
  broader than the named finding is ever accepted (:func:`acknowledge`).
* checkov reads the synthesized templates and skips a check on a resource whose
  ``Metadata.checkov.skip`` lists it with a comment (:func:`checkov_skip`); the test suite
  runs it and fails on any finding not skipped there.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

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


def generated_child(stack: cdk.Stack, id_prefix: str) -> IConstruct:
    """The construct CDK generated at stack level whose id starts with ``id_prefix``.

    Singleton handlers (a BucketDeployment's, the bucket auto-delete provider) are added to
    the stack, not under the construct that asked for them; acknowledging their findings on
    them rather than on the whole stack keeps the acknowledgment off everything else. A
    missing one raises: an aws-cdk-lib upgrade that renames it must not silently widen or
    drop an acknowledgment.
    """
    found = [c for c in stack.node.children if c.node.id.startswith(id_prefix)]
    if len(found) != 1:
        raise RuntimeError(
            f"expected one construct {id_prefix}* in stack {stack.stack_name}, found "
            f"{[c.node.id for c in found]}"
        )
    return found[0]


def checkov_skip(construct: IConstruct, **reasons: str) -> None:
    """Skip checkov checks (``CKV_AWS_116="why"``) on ``construct``'s CloudFormation resource.

    ``construct`` is a resource or an L2 construct whose default child (followed down) is one.
    Skips add up across calls; each needs a reason.
    """
    resource = cfn_resource(construct)
    current: Any = resource.get_metadata("checkov") or {}
    skips = list(current.get("skip", []))
    for check, reason in reasons.items():
        if not reason.strip():
            raise ValueError(f"skipping {check} needs a reason")
        skips.append({"id": check, "comment": reason})
    resource.add_metadata("checkov", {"skip": skips})


def cfn_resource(construct: IConstruct) -> cdk.CfnResource:
    """The CloudFormation resource behind ``construct`` (itself, or its default child's)."""
    node: IConstruct | None = construct
    while node is not None and not isinstance(node, cdk.CfnResource):
        node = node.node.default_child
    if node is None:
        raise TypeError(f"{construct.node.path} has no CloudFormation resource")
    return node
