"""The comparison instance states its CPU credit mode in the template (unlimited by default,
standard when configured) and a type without credits gets none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def _instance_props(data_dir: Path, **context: str) -> dict[str, Any]:
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    from stacks.comparison import ComparisonInstance
    from stacks.config import AppConfig
    from stacks.data import Dataset

    config = AppConfig.from_context({"dataset_dir": str(data_dir), **context}.get, env={})
    stack = cdk.Stack(cdk.App(), "CreditCheck")
    dataset = Dataset(stack, "Dataset", dataset_dir=config.dataset_dir, retain_results=False)
    ComparisonInstance(
        stack,
        "Comparison",
        dataset=dataset,
        instance_type=config.instance_type,
        cpu_credits=config.cpu_credits,
        root_volume_gb=config.root_volume_gb,
    )
    found = Template.from_stack(stack).find_resources("AWS::EC2::Instance")
    assert len(found) == 1
    props: dict[str, Any] = next(iter(found.values()))["Properties"]
    return props


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({}, {"CPUCredits": "unlimited"}),
        ({"cpu_credits": "standard"}, {"CPUCredits": "standard"}),
        ({"instance_type": "m7i.xlarge"}, None),
    ],
)
def test_the_instance_states_its_credit_mode(
    data_dir: Path, context: dict[str, str], expected: dict[str, str] | None
) -> None:
    props = _instance_props(data_dir, **context)
    assert props.get("CreditSpecification") == expected
