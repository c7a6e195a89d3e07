"""Pulumi program: the project's OpenWhisk package and actions, as ``shpc ow apply`` makes them.

``pulumi up`` / ``pulumi destroy`` in this directory. The resources are the same as
``shpc ow apply`` creates (same bodies, built by :mod:`serverless_hpc.openwhisk.deploy`), and
the dynamic provider talks to the controller through the same REST client. Credentials are
read by the provider at each operation (``~/.wskprops``, ``$WSK_CONFIG_FILE``, ``WHISK_*``)
and never enter the stack's state.

Stack configuration (``pulumi config set <key> <value>``):

* ``project`` (default ``serverless-hpc``), ``package`` (default: the project);
* ``workloads``: comma-separated (default: every workload of the package);
* ``imageLean``, ``imageTrain``: runtime images (else ``$SHPC_OW_IMAGE_LEAN`` / ``_TRAIN``);
* ``memoryMb``, ``timeoutS``: objects such as ``{"train": 2048}`` (``--path`` or JSON);
  unset, each workload's spec decides, as for ``shpc ow apply``, with its memory fitted to
  ``maxActionMemory`` (default: OpenWhisk's documented 512; the program cannot ask the
  controller, so set it to your namespace's maximum);
* ``store``, ``dataDir``: bound as the adapter's ``shpc_store`` / ``shpc_data_dir``;
* ``configFile``, ``insecure``: where the wsk properties are, and ``wsk -i``.
"""

from __future__ import annotations

from pathlib import Path

import pulumi

from serverless_hpc.openwhisk import deploy
from serverless_hpc.openwhisk.pulumi_provider import OwEntity

HERE = Path(__file__).resolve().parent

config = pulumi.Config()
project = config.get("project") or deploy.DEFAULT_PROJECT
# Empty: every workload of the package (ProjectConfig's default).
workloads = tuple(w.strip() for w in (config.get("workloads") or "").split(",") if w.strip())
images = {k: v for k in deploy.IMAGE_ENV if (v := config.get(f"image{k.capitalize()}"))}
timeouts = config.get_object("timeoutS") or {}
cfg = deploy.ProjectConfig(
    project=project,
    package=config.get("package"),
    workloads=workloads,
    images=images,
    memory_mb={str(k): int(v) for k, v in (config.get_object("memoryMb") or {}).items()},
    timeout_ms={str(k): int(v) * 1000 for k, v in timeouts.items()},
    action_file=HERE / "action.py",
    store_uri=config.get("store"),
    data_dir=config.get("dataDir"),
)
max_memory_mb = config.get_int("maxActionMemory") or deploy.DOCUMENTED_DEFAULTS["maxActionMemory"]
specs = deploy.build_specs(cfg, max_memory_mb=max_memory_mb)
connection = {"config_file": config.get("configFile"), "insecure": config.get_bool("insecure")}

package = OwEntity(
    "package",
    kind="package",
    name=cfg.package_name,
    body=deploy.package_body(cfg),
    project=project,
    **connection,
)
actions = [
    OwEntity(
        spec.workload,
        kind="action",
        name=spec.qualified_name,
        body=spec.body(),
        project=project,
        **connection,
        opts=pulumi.ResourceOptions(depends_on=[package]),
    )
    for spec in specs
]

pulumi.export("package", cfg.package_name)
pulumi.export("actions", [spec.qualified_name for spec in specs])
