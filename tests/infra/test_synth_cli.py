"""The real toolchain: ``cdk synth`` through the npm CLI, then cfn-lint, cdk-nag and checkov."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from serverless_hpc import aws
from tests.conftest import REPO
from tests.infra.conftest import SynthResult

log = logging.getLogger(__name__)
STACKS = [aws.stack_name()]
#: checkov lives in its own venv (``make test`` creates it from requirements-checkov.txt):
#: it pins libraries the project pins differently (boto3, packaging, ...).
CHECKOV_VENV = REPO / ".venv-checkov" / "bin" / "checkov"


def test_synth_produces_the_stack(cli_synth: SynthResult) -> None:
    log.info("cdk synth took %.1f s", cli_synth.seconds)
    for name in STACKS:
        assert (cli_synth.outdir / f"{name}.template.json").is_file()


def test_cfn_lint_reports_zero_errors(cli_synth: SynthResult) -> None:
    templates = [str(cli_synth.outdir / f"{n}.template.json") for n in STACKS]
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--format", "json", "--", *templates],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # exit code: bit 2 = errors, 4 = warnings, 8 = informational
    assert proc.returncode & 1 == 0, proc.stderr  # 1 = cfn-lint itself failed
    findings = json.loads(proc.stdout)
    errors = [f for f in findings if f["Level"] == "Error"]
    assert not errors, json.dumps(errors, indent=1)
    assert proc.returncode & 2 == 0
    log.info("cfn-lint: %d warning(s), 0 errors", len(findings))


def test_cdk_nag_aws_solutions_reports_no_unacknowledged_error(cli_synth: SynthResult) -> None:
    # The synth would have failed on an unacknowledged cdk-nag error; check the report too.
    report = json.loads((cli_synth.outdir / "validation-report.json").read_text())
    failures = [
        v
        for plugin in report.get("pluginReports", [])
        for v in plugin.get("violations", [])
        if v.get("severity", "error").lower() == "error"
    ]
    assert failures == []
    assert "AwsSolutions" not in cli_synth.output or "ERROR" not in cli_synth.output


def test_every_acknowledgment_names_one_rule_and_carries_a_reason(cli_synth: SynthResult) -> None:
    """Acknowledgments are construct metadata ``{rule id: reason}`` in each stack's metadata."""
    acks: dict[str, str] = {}
    for name in STACKS:
        metadata = json.loads((cli_synth.outdir / f"{name}.metadata.json").read_text())
        for path, entries in metadata.items():
            for entry in entries:
                if entry["type"] == "aws:cdk:acknowledged-rules":
                    for rule, reason in entry["data"].items():
                        acks[f"{path}:{rule}"] = reason
    ours = {k: v for k, v in acks.items() if "AwsSolutions-" in k}
    assert len(ours) >= 10, sorted(acks)
    for key, reason in ours.items():
        assert len(reason.strip()) >= 40, f"{key}: reason too thin: {reason!r}"
        # IAM5 findings are acknowledged one by one, never the whole rule
        rule = key.rsplit(":", 1)[-1] if "[" not in key else key[key.index("AwsSolutions-") :]
        if "IAM5" in rule:
            assert "[" in rule, f"blanket IAM5 acknowledgment: {key}"


def test_cdk_nag_is_live_and_fails_an_unprotected_bucket(tmp_path: Path) -> None:
    """The plugin really runs: an unacknowledged finding fails synthesis."""
    import aws_cdk as cdk
    import pytest
    from aws_cdk import aws_s3 as s3
    from cdk_nag import AwsSolutionsChecks

    app = cdk.App(outdir=str(tmp_path))
    s3.Bucket(cdk.Stack(app, "Unprotected"), "Bucket")
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(RuntimeError, match="Validation"):
        app.synth()


def test_assets_ship_only_what_they_must(cli_synth: SynthResult) -> None:
    """The dataset asset holds exactly the four canonical files; contexts exclude the venv."""
    dirs = [p for p in cli_synth.outdir.glob("asset.*") if p.is_dir()]
    names = [{q.name for q in d.iterdir()} for d in dirs]
    dataset = [n for n in names if any(x.endswith("-ubyte.gz") for x in n)]
    assert len(dataset) == 1
    assert dataset[0] == {
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    }
    for d in dirs:
        assert not (d / ".venv").exists() and not (d / "node_modules").exists()
        assert not list(d.rglob("__pycache__"))
    source = [d for d in dirs if (d / "ec2" / "runner.py").is_file()]
    assert len(source) == 1
    assert (source[0] / "pyproject.toml").is_file()
    assert (source[0] / "serverless_hpc" / "prices.json").is_file()
    zips = list(cli_synth.outdir.glob("asset.*.zip"))
    assert all(zipfile.is_zipfile(z) for z in zips)
    assert Path(cli_synth.outdir / "manifest.json").is_file()


def _checkov() -> str:
    """The checkov executable: ``$CHECKOV``, the project's ``.venv-checkov``, or PATH."""
    found = os.environ.get("CHECKOV") or (
        str(CHECKOV_VENV) if CHECKOV_VENV.exists() else shutil.which("checkov")
    )
    if not found:
        pytest.skip(
            "checkov is not installed: 'make test' creates .venv-checkov from "
            "tests/infra/requirements-checkov.txt (its own venv, since checkov pins boto3 and "
            "others differently), or set $CHECKOV to a checkov executable"
        )
    return found


def _run_checkov(*templates: Path) -> list[dict[str, Any]]:
    """checkov's JSON report of each template (one per file, whatever its output shape)."""
    files = [a for t in templates for a in ("-f", str(t))]
    options = ["--framework", "cloudformation", "--compact", "--output", "json", "--skip-download"]
    proc = subprocess.run(
        [_checkov(), *files, *options],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    # exit code 1 = failed checks (judged below); anything else non-zero = checkov failed
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    return report if isinstance(report, list) else [report]


def test_checkov_reports_no_unacknowledged_finding(cli_synth: SynthResult) -> None:
    """Every checkov finding on the templates is fixed, or skipped in code with a reason."""
    templates = [cli_synth.outdir / f"{n}.template.json" for n in STACKS]
    reports = _run_checkov(*templates)
    failed = [
        f"{f['check_id']} {f['resource']}: {f['check_name']}"
        for r in reports
        for f in r["results"]["failed_checks"]
    ]
    assert failed == [], "\n".join(failed)
    passed = sum(r["summary"]["passed"] for r in reports)
    skipped = [f for r in reports for f in r["results"]["skipped_checks"]]
    assert passed > 100  # checkov really read the templates
    for f in skipped:
        reason = (f.get("check_result") or {}).get("suppress_comment") or ""
        assert len(reason.strip()) >= 40, f"{f['check_id']} {f['resource']}: thin reason"
    log.info("checkov: %d passed, %d acknowledged, 0 failed", passed, len(skipped))


def test_checkov_is_live_and_fails_an_unprotected_bucket(tmp_path: Path) -> None:
    """The check really runs: a bare bucket fails (so a pass above means something)."""
    template = tmp_path / "bare.template.json"
    template.write_text(
        json.dumps({"Resources": {"Bare": {"Type": "AWS::S3::Bucket", "Properties": {}}}})
    )
    (report,) = _run_checkov(template)
    assert {f["check_id"] for f in report["results"]["failed_checks"]} >= {"CKV_AWS_18"}
