"""Against a real OpenWhisk, when the user has wsk credentials (read-only by default).

Skipped, with the reason, when no credentials are configured. With credentials it checks
that the endpoint answers the limits API and that ``status`` works; set
``SHPC_OW_IMAGE_LEAN`` as well to also apply, invoke and destroy ``dataproc``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from serverless_hpc.openwhisk.client import OpenWhiskClient
from serverless_hpc.openwhisk.config import CredentialsError, load_credentials

pytestmark = pytest.mark.openwhisk


@pytest.fixture
def client() -> Iterator[OpenWhiskClient]:
    """A client for the user's real endpoint; skip the test when there is none."""
    try:
        creds = load_credentials()
    except CredentialsError as exc:
        pytest.skip(f"no OpenWhisk credentials configured ({exc})")
    c = OpenWhiskClient(creds)
    try:
        yield c
    finally:
        c.close()


def test_real_endpoint_reports_limits_and_status(client: OpenWhiskClient) -> None:
    # GIVEN real credentials WHEN the namespace limits and the project status are read
    from serverless_hpc.openwhisk import deploy

    limits = deploy.NamespaceLimits.from_api(client.get_limits())
    state = deploy.status(client, project="serverless-hpc-realtest")
    # THEN the controller answered with usable values
    assert limits.max_memory_mb >= limits.min_memory_mb > 0
    assert state["package"] == "serverless-hpc-realtest"


@pytest.mark.skipif(
    not os.environ.get("SHPC_OW_IMAGE_LEAN"), reason="SHPC_OW_IMAGE_LEAN not set (no image)"
)
def test_real_apply_invoke_destroy(client: OpenWhiskClient) -> None:
    # GIVEN a pushed lean image WHEN dataproc is applied, invoked and destroyed
    from serverless_hpc.openwhisk import deploy
    from serverless_hpc.targets.base import TargetSettings
    from serverless_hpc.targets.openwhisk import OpenWhiskTarget

    project = "serverless-hpc-realtest"
    cfg = deploy.ProjectConfig(project=project, workloads=("dataproc",))
    try:
        deploy.apply(client, cfg)
        with OpenWhiskTarget(TargetSettings(extra={"project": project})) as target:
            out = target.invoke(
                {"workload": "dataproc", "params": {"split": "test", "end": 100}}, timeout_s=120
            )
        # THEN the invocation succeeded with platform figures
        assert out.ok, out.response
        assert out.duration_ms is not None
    finally:
        deploy.destroy(client, project=project)
        assert deploy.status(client, project=project)["exists"] is False
