"""Tag what ``cdk.Tags`` cannot reach, so every resource carries the project tag.

CDK's tag aspect only tags constructs that implement ``ITaggable``. The singleton handlers
CDK generates as raw ``CfnResource``s (e.g. the S3 auto-delete provider's role and function)
are not, so without this they would be the untagged leftovers ``shpc status`` cannot see.
"""

from __future__ import annotations

from typing import Final

import aws_cdk as cdk
import jsii
from constructs import IConstruct

#: Resource types whose CloudFormation schema takes a ``Tags`` list of Key/Value pairs.
TAGGABLE_RAW_TYPES: Final = frozenset({"AWS::IAM::Role", "AWS::Lambda::Function"})


@jsii.implements(cdk.IAspect)
class TagRawResources:
    """Add ``key=value`` to raw (non-taggable) resources of :data:`TAGGABLE_RAW_TYPES`."""

    def __init__(self, key: str, value: str) -> None:
        self.key = key
        self.value = value

    def visit(self, node: IConstruct) -> None:
        """Override the ``Tags`` property of an untaggable raw resource."""
        if (
            isinstance(node, cdk.CfnResource)
            and node.cfn_resource_type in TAGGABLE_RAW_TYPES
            and not cdk.TagManager.is_taggable(node)
        ):
            node.add_property_override("Tags", [{"Key": self.key, "Value": self.value}])
