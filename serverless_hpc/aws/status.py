"""What is still alive: every resource carrying the project tag, via the tagging API.

``make destroy`` should leave this list empty; anything listed after a destroy is a leak
(for example a bucket kept on purpose with ``-c retain_results=true``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from serverless_hpc import aws

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TaggedResource:
    """One resource that carries the project tag."""

    arn: str
    service: str
    resource_type: str
    tags: dict[str, str]


def _kind(arn: str) -> tuple[str, str]:
    # arn:partition:service:region:account:resource-type/id (or resource-type:id, or id)
    parts = arn.split(":", 5)
    service = parts[2] if len(parts) > 2 else ""
    resource = parts[5] if len(parts) > 5 else ""
    for sep in ("/", ":"):
        if sep in resource:
            return service, resource.split(sep, 1)[0]
    return service, service


def tagged_resources(
    client: Any,
    *,
    key: str = aws.PROJECT_TAG_KEY,
    value: str = aws.PROJECT_TAG_VALUE,
) -> list[TaggedResource]:
    """Every resource in the client's region tagged ``key=value`` (all pages)."""
    out: list[TaggedResource] = []
    paginator = client.get_paginator("get_resources")
    for page in paginator.paginate(TagFilters=[{"Key": key, "Values": [value]}]):
        for item in page.get("ResourceTagMappingList", []):
            arn = item["ResourceARN"]
            service, rtype = _kind(arn)
            tags = {t["Key"]: t["Value"] for t in item.get("Tags", [])}
            out.append(TaggedResource(arn=arn, service=service, resource_type=rtype, tags=tags))
    out.sort(key=lambda r: (r.service, r.resource_type, r.arn))
    return out
