"""``ec2``: the comparison VM (t3.xlarge by default) running the standalone runner via SSM.

The target is *batch-native*: a whole fan-out is one SSM Run Command. For each batch it

1. uploads the contract requests as JSON to the results bucket (``results/ec2/...``),
2. sends ``AWS-RunShellScript`` running ``ec2/runner.py`` on the instance (no SSH, no inbound
   rule: the SSM agent polls out),
3. waits with the ``command_executed`` waiter, bounded by the batch's deadline,
4. reads the results document the runner wrote back and returns one outcome per request.

Both clocks are kept: each record's ``duration_ms`` is the instance's own time for that
request, and ``client_ms`` is the driver's wall time for the whole batch (upload, SSM
dispatch, run, download), which is what a user of the VM waits for.

**Cost** follows EC2 billing: per second with a 60-second minimum for each period the
instance runs, for the *whole* time it is up for the run (boot and idle between batches
included, not only compute), at the on-demand rate plus the root volume. The running total is
allocated to batches as it accrues (each batch gets the billed seconds since the previous
one ended, split evenly across its records), so the records add up to the bill up to the last
batch; the tail up to :meth:`close` (and the stop, when this target started the instance) is
in the ledger written to the log directory.

The instance is left as found: if it was stopped, :meth:`open` starts it (waiting with the
``instance_running`` waiter and for the SSM agent to report online) and :meth:`close` stops
it again; ``--target-opt keep_running=true`` leaves it running.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import shlex
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from serverless_hpc import aws
from serverless_hpc.contract import PLATFORM_ERROR, TIMEOUT, error_response, validate_response
from serverless_hpc.invocation import Outcome, Phase
from serverless_hpc.pricing import CostLedger, ec2_billed_seconds, ec2_hourly
from serverless_hpc.targets.aws_session import open_session, require_boto3
from serverless_hpc.targets.base import (
    Target,
    TargetSettings,
    TargetUnavailable,
    TimedOutcome,
)

log = logging.getLogger(__name__)

KNOWN_OPTIONS: Final = frozenset(
    {"stack_prefix", "region", "profile", "workers", "keep_running", "instance_id"}
)
#: Slack on top of the per-request timeouts for process start and S3 transfers, seconds.
BATCH_SLACK_S: Final = 120.0
POLL_DELAY_S: Final = 2
SSM_ONLINE_TIMEOUT_S: Final = 300.0
#: The user data installs TensorFlow: allow it this long after a fresh deploy.
BOOTSTRAP_TIMEOUT_S: Final = 1800.0
#: Written by ec2/bootstrap.sh when the project is installed.
READY_FILE: Final = "/opt/serverless-hpc/READY"


class Ec2Target(Target):
    """Run batches on the comparison instance through SSM; see the module docstring."""

    name = "ec2"
    kind = "vm"
    options = KNOWN_OPTIONS
    batch_native = True
    supports_forced_cold = False

    def __init__(
        self,
        settings: TargetSettings,
        *,
        session: Any = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``session`` (a boto3 Session), ``clock`` and ``sleep`` are test seams."""
        super().__init__(settings)
        require_boto3(self.name)
        extra = self.target_options()
        self.prefix = extra.get("stack_prefix", aws.DEFAULT_STACK_PREFIX)
        self.region = extra.get("region")
        self.profile = extra.get("profile")
        self.keep_running = extra.get("keep_running", "false").lower() in ("1", "true", "yes")
        try:
            self.workers = int(extra["workers"]) if "workers" in extra else None
        except ValueError:
            raise TargetUnavailable("ec2: workers must be an integer") from None
        self._session = session
        self._clock = clock
        self._sleep = sleep
        self.instance_id: str | None = extra.get("instance_id")
        self.instance_type = "t3.xlarge"
        self.root_volume_gb = 0.0
        self.memory_mb: int | None = None
        self.vcpus: int | None = None
        self.runner_command = ""
        self.dataset_uri = ""
        self.results_bucket = ""
        self.store_uri = ""
        self.started_by_us = False
        self.up_since: float | None = None
        self._billed_s = 0.0  # billed seconds already allocated to records
        self.ledger = CostLedger()
        from serverless_hpc.pricing_data import load_prices

        self.prices = load_prices()

    # -- setup ---------------------------------------------------------------------------
    def open(self) -> None:
        """Read the stack outputs, make sure the instance runs and the SSM agent is online."""
        from botocore.exceptions import BotoCoreError, ClientError, WaiterError

        from serverless_hpc.aws.outputs import (
            OutputsUnavailable,
            comparison_outputs,
            data_outputs,
        )

        session = open_session(
            self.name, profile=self.profile, region=self.region, session=self._session
        )
        self.region = session.region_name
        self._ec2 = session.client("ec2")
        self._ssm = session.client("ssm")
        self._s3 = session.client("s3")
        cfn = session.client("cloudformation")
        try:
            data = data_outputs(cfn, self.prefix)
            comp = comparison_outputs(cfn, self.prefix)
        except OutputsUnavailable as exc:
            raise TargetUnavailable(f"ec2: {exc}") from exc
        except (BotoCoreError, ClientError) as exc:
            raise TargetUnavailable(f"ec2: cannot read stack outputs: {exc}") from exc
        self.instance_id = self.instance_id or comp.instance_id
        self.instance_type = comp.instance_type
        self.root_volume_gb = comp.root_volume_gb
        self.runner_command = comp.runner_command
        self.dataset_uri = data.dataset_uri
        self.results_bucket = data.results_bucket
        self.store_uri = data.store_uri
        try:
            self._ensure_running()
            info = self._ec2.describe_instance_types(InstanceTypes=[self.instance_type])
            self._wait_bootstrapped()
        except (BotoCoreError, ClientError, WaiterError, TargetUnavailable) as exc:
            if self.started_by_us and not self.keep_running:
                log.warning("stopping %s again: it is not usable", self.instance_id)
                self._ec2.stop_instances(InstanceIds=[self.instance_id])
            if isinstance(exc, TargetUnavailable):
                raise
            raise TargetUnavailable(
                f"ec2: instance {self.instance_id} is not usable: {exc}"
            ) from exc
        types = info.get("InstanceTypes", [])
        if types:
            self.memory_mb = int(types[0]["MemoryInfo"]["SizeInMiB"])
            self.vcpus = int(types[0]["VCpuInfo"]["DefaultVCpus"])

    def _ensure_running(self) -> None:
        desc = self._ec2.describe_instances(InstanceIds=[self.instance_id])
        state = desc["Reservations"][0]["Instances"][0]["State"]["Name"]
        if state == "running":
            self.up_since = self._clock()
            return
        if state not in ("stopped", "stopping", "pending"):
            raise TargetUnavailable(f"ec2: instance {self.instance_id} is {state}")
        if state == "stopping":
            self._ec2.get_waiter("instance_stopped").wait(
                InstanceIds=[self.instance_id], WaiterConfig={"Delay": 5, "MaxAttempts": 60}
            )
        log.info("starting instance %s", self.instance_id)
        self.up_since = self._clock()  # billing starts with the start request (boot included)
        if state != "pending":
            self._ec2.start_instances(InstanceIds=[self.instance_id])
        self.started_by_us = True
        self._ec2.get_waiter("instance_running").wait(
            InstanceIds=[self.instance_id], WaiterConfig={"Delay": 5, "MaxAttempts": 60}
        )
        self._wait_ssm_online()

    def _wait_bootstrapped(self) -> None:
        """Wait (bounded) until the user data has finished installing the project.

        Right after ``make deploy`` the instance may still be installing TensorFlow; this
        check runs before any batch so that time never lands in a batch's measurements.
        """
        resp = self._ssm.send_command(
            InstanceIds=[self.instance_id],
            DocumentName="AWS-RunShellScript",
            Comment="serverless-hpc: wait for the bootstrap",
            TimeoutSeconds=60,
            Parameters={
                "commands": [f"cloud-init status --wait >/dev/null; test -f {READY_FILE}"],
                "executionTimeout": [str(int(BOOTSTRAP_TIMEOUT_S))],
            },
        )
        failure = self._wait(resp["Command"]["CommandId"], BOOTSTRAP_TIMEOUT_S)
        if failure is not None:
            raise TargetUnavailable(
                f"ec2: {self.instance_id} has not finished its bootstrap "
                f"({failure['error']['message']}); see /var/log/shpc-bootstrap.log on it"
            )

    def _wait_ssm_online(self) -> None:
        """Poll (bounded, with backoff) until the SSM agent reports the instance online."""
        deadline = self._clock() + SSM_ONLINE_TIMEOUT_S
        delay = 2.0
        while self._clock() < deadline:
            info = self._ssm.describe_instance_information(
                Filters=[{"Key": "InstanceIds", "Values": [self.instance_id]}]
            )["InstanceInformationList"]
            if info and info[0].get("PingStatus") == "Online":
                return
            self._sleep(min(delay, max(deadline - self._clock(), 0.0)))
            delay = min(delay * 2, 15.0)
        raise TargetUnavailable(
            f"ec2: SSM agent on {self.instance_id} not online within {SSM_ONLINE_TIMEOUT_S:.0f} s"
        )

    def close(self) -> None:
        """Bill the tail of the uptime, stop the instance if this target started it, log."""
        if self.up_since is not None:
            if self.started_by_us and not self.keep_running:
                log.info("stopping instance %s (it was stopped before the run)", self.instance_id)
                self._ec2.stop_instances(InstanceIds=[self.instance_id])
            tail = self._allocate(self._clock())
            if tail:
                self.ledger.add("ec2 uptime after the last batch", 0, "s", tail)
        if self.settings.log_dir is not None and self.ledger.lines:
            self.settings.log_dir.mkdir(parents=True, exist_ok=True)
            summary = {
                **self.ledger.summary(),
                "instance_type": self.instance_type,
                "billed_seconds": self._billed_s,
                "prices_as_of": self.prices.as_of,
            }
            path = self.settings.log_dir / "ec2-cost-ledger.json"
            path.write_text(json.dumps(summary, indent=2), encoding="utf-8")

    def describe(self) -> dict[str, Any]:
        """Instance, type, region and worker count."""
        return {
            "region": self.region,
            "instance_id": self.instance_id,
            "instance_type": self.instance_type,
            "root_volume_gb": self.root_volume_gb,
            "memory_mb": self.memory_mb,
            "vcpus": self.vcpus,
            "workers": self.workers or self.vcpus,
            "stack_prefix": self.prefix,
            "prices_as_of": self.prices.as_of,
        }

    # -- cost ----------------------------------------------------------------------------
    def _allocate(self, now: float) -> float:
        """Dollars of uptime billed between the last allocation and ``now``."""
        if self.up_since is None:
            return 0.0
        billed = ec2_billed_seconds(now - self.up_since, self.prices)
        new = max(billed - self._billed_s, 0.0)
        self._billed_s = max(billed, self._billed_s)
        hourly = ec2_hourly(self.instance_type, self.prices, root_volume_gb=self.root_volume_gb)
        return new / 3600.0 * hourly

    # -- invocation ----------------------------------------------------------------------
    def invoke(
        self, request: dict[str, Any], *, timeout_s: float, force_cold: bool = False
    ) -> Outcome:
        """One request as a batch of one."""
        return self.invoke_batch([request], timeout_s=timeout_s, force_cold=force_cold)[0].outcome

    def invoke_batch(
        self, requests: Sequence[dict[str, Any]], *, timeout_s: float, force_cold: bool = False
    ) -> list[TimedOutcome]:
        """Run the whole batch with one SSM command; never raises for a failed batch."""
        from botocore.exceptions import BotoCoreError, ClientError, WaiterError

        t_send = self._clock()
        t0 = time.perf_counter_ns()
        run_id = next((str(r["run_id"]) for r in requests if r.get("run_id")), "adhoc")
        base = f"{aws.RESULTS_PREFIX}/ec2/{run_id}/{time.strftime('%H%M%S')}-{secrets.token_hex(4)}"
        workers = self.workers or self.vcpus or 1
        waves = math.ceil(len(requests) / max(workers, 1))
        budget_s = timeout_s * waves + BATCH_SLACK_S
        doc: dict[str, Any] | None = None
        failure: dict[str, Any] | None = None
        try:
            self._s3.put_object(
                Bucket=self.results_bucket,
                Key=f"{base}/requests.json",
                Body=json.dumps(list(requests)).encode(),
            )
            command_id = self._send(base, workers, budget_s)
            failure = self._wait(command_id, budget_s)
            if failure is None:
                body = self._s3.get_object(Bucket=self.results_bucket, Key=f"{base}/results.json")
                doc = json.loads(body["Body"].read())
        except (BotoCoreError, ClientError, WaiterError, json.JSONDecodeError) as exc:
            failure = error_response(PLATFORM_ERROR, f"ec2 batch failed: {exc}")
        t_recv = self._clock()
        client_ms = (time.perf_counter_ns() - t0) / 1e6
        cost = self._allocate(t_recv)
        self.ledger.add(f"ec2 {self.instance_type} uptime", len(requests), "batch", cost)
        share = cost / len(requests) if requests else 0.0
        results = doc.get("results", []) if doc else []
        if doc is not None and len(results) != len(requests):
            msg = f"runner returned {len(results)} results for {len(requests)} requests"
            failure, results = error_response(PLATFORM_ERROR, msg), []
        out: list[TimedOutcome] = []
        for i in range(len(requests)):
            outcome = (
                self._outcome(results[i], doc or {}, client_ms)
                if failure is None
                else Outcome(response=failure, cold=False, instance=self.instance_id)
            )
            outcome.cost_usd = share
            out.append(
                TimedOutcome(outcome=outcome, client_ms=client_ms, t_send=t_send, t_recv=t_recv)
            )
        return out

    def _send(self, base: str, workers: int, budget_s: float) -> str:
        uri = f"s3://{self.results_bucket}/{base}"
        argv = [
            f"--requests={uri}/requests.json",
            f"--out={uri}/results.json",
            f"--dataset={self.dataset_uri}",
            f"--store={self.store_uri}",
            f"--workers={workers}",
        ]
        cmd = (
            f"AWS_DEFAULT_REGION={shlex.quote(str(self.region))} "
            f"{self.runner_command} {' '.join(shlex.quote(a) for a in argv)}"
        )
        resp = self._ssm.send_command(
            InstanceIds=[self.instance_id],
            DocumentName="AWS-RunShellScript",
            Comment="serverless-hpc benchmark batch",
            TimeoutSeconds=60,  # time for the agent to pick the command up
            Parameters={"commands": [cmd], "executionTimeout": [str(int(budget_s))]},
        )
        command_id: str = resp["Command"]["CommandId"]
        return command_id

    def _wait(self, command_id: str, budget_s: float) -> dict[str, Any] | None:
        """Wait for the command; ``None`` on success, else the failure envelope."""
        from botocore.exceptions import WaiterError

        attempts = max(int(budget_s / POLL_DELAY_S) + 1, 2)
        try:
            self._ssm.get_waiter("command_executed").wait(
                CommandId=command_id,
                InstanceId=self.instance_id,
                WaiterConfig={"Delay": POLL_DELAY_S, "MaxAttempts": attempts},
            )
        except WaiterError as exc:
            last = exc.last_response or {}
            status = last.get("Status", "unknown")
            stderr = str(last.get("StandardErrorContent", ""))[-500:]
            kind = TIMEOUT if status in ("TimedOut", "unknown", "InProgress") else PLATFORM_ERROR
            return error_response(kind, f"runner command {status}: {stderr or exc}")
        return None

    def _outcome(self, item: dict[str, Any], doc: dict[str, Any], client_ms: float) -> Outcome:
        """The runner's outcome for one request, with what the VM adds to it.

        The instance's worker pool decides cold/warm (a worker's first use of a workload);
        the dataset staging of the batch is a phase of every cold start in it; the batch's
        wall time and the worker's handler time are platform extras.
        """
        try:
            outcome = Outcome.from_dict(item.get("outcome"))  # type: ignore[arg-type]
            validate_response(outcome.response)
        except ValueError as exc:
            return Outcome(
                response=error_response(PLATFORM_ERROR, f"malformed runner result: {exc}"),
                cold=False,
                memory_mb=self.memory_mb,
                instance=self.instance_id,
                extra={"batch_wall_ms": client_ms},
            )
        if outcome.cold and isinstance(doc.get("stage_ms"), int | float):
            outcome.breakdown[Phase.DATASET_STAGE] = float(doc["stage_ms"])
        outcome.extra["batch_wall_ms"] = client_ms
        if outcome.duration_ms is not None:
            outcome.extra["instance_ms"] = outcome.duration_ms
        outcome.memory_mb = self.memory_mb
        outcome.billed_ms = None  # the VM is billed per second of up-time, not per invocation
        # the worker process on the instance: cold/warm is per worker, as per environment
        outcome.instance = (
            f"{self.instance_id}/{outcome.instance}" if outcome.instance else self.instance_id
        )
        return outcome
