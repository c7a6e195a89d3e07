"""A workload is its package: copy one and it works with its options; delete one and the rest
of the project does not notice.

Each test works on a copy of the tree (the files git knows), run in child processes with the
copy first on ``PYTHONPATH``, so the checkout itself is never changed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def _project_files() -> list[str]:
    """The files git knows (tracked or not ignored); every file where there is no git."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if listed.returncode == 0:
        return listed.stdout.splitlines()
    skip = {".venv", ".venv-checkov", "node_modules", ".git", "results", "cdk.out"}
    return [
        str(p.relative_to(REPO))
        for p in REPO.rglob("*")
        if p.is_file()
        and not skip & set(p.relative_to(REPO).parts)
        and "__pycache__" not in p.parts
    ]


def _copy_tree(dest: Path) -> Path:
    for name in _project_files():
        src = REPO / name
        if not src.is_file() or name.startswith(("tests/", "benchmarks/", "docs/")):
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    return dest


def _run(tree: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [sys.executable, *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _bench(tree: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _run(
        tree,
        "-m",
        "serverless_hpc.cli",
        "bench",
        "--targets",
        "standalone",
        "--repeats",
        "1",
        "--modes",
        "natural",
        "-q",
        "--out",
        str(out),
        *args,
    )


def _add_option(tree: Path) -> None:
    """``sleep`` copied as ``nap``, with one more option that the function returns."""
    pkg = tree / "serverless_hpc" / "workloads"
    shutil.copytree(pkg / "sleep", pkg / "nap")
    init = pkg / "nap" / "__init__.py"
    text = init.read_text(encoding="utf-8")
    anchor = "    options=(\n"
    assert anchor in text
    init.write_text(
        text.replace(
            anchor,
            anchor + '        Option("label", str, "a label to echo", pattern="[a-z]{1,16}", '
            'flag="nap_label"),\n',
        ),
        encoding="utf-8",
    )
    function = pkg / "nap" / "function.py"
    text = function.read_text(encoding="utf-8")
    text = text.replace(
        "    alloc_mb: int = Field(default=0, ge=0, le=10240)\n",
        '    alloc_mb: int = Field(default=0, ge=0, le=10240)\n    label: str = ""\n',
    )
    text = text.replace('"alloc_mb": p.alloc_mb}', '"alloc_mb": p.alloc_mb, "label": p.label}')
    function.write_text(text, encoding="utf-8")


@pytest.mark.integration
def test_a_copied_workload_brings_its_declared_option(tmp_path: Path) -> None:
    # GIVEN the sleep workload copied as `nap`, with one more declared option
    tree = _copy_tree(tmp_path / "tree")
    _add_option(tree)
    # THEN the option is a flag of `shpc bench` ...
    helped = _run(tree, "-m", "serverless_hpc.cli", "bench", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "--nap-label" in helped.stdout and "nap.label" in helped.stdout
    # ... a field of the dashboard's form ...
    form = _run(
        tree,
        "-c",
        "import json; from serverless_hpc.serve.form import workload_fields, form_fields; "
        "print(json.dumps([workload_fields(), form_fields()['nap_label']]))",
    )
    assert form.returncode == 0, form.stderr
    fields, argv = json.loads(form.stdout)
    (nap,) = [f for f in fields if f["name"] == "nap_label"]
    assert nap["workloads"] == ["nap"] and argv == ["--nap-label", "choice"]
    # ... checked when the plan is made ...
    bad = _bench(tree, tmp_path / "bad", "--workloads", "nap", "--nap-label", "NOT-OK")
    assert bad.returncode == 2 and "nap.label" in bad.stderr and not (tmp_path / "bad").exists()
    # ... and it reaches the function's params
    done = _bench(tree, tmp_path / "run", "--workloads", "nap", "--nap-label", "hello")
    assert done.returncode == 0, done.stderr
    records = [
        json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()
    ]
    assert records and all(r["result"]["label"] == "hello" for r in records)


@pytest.mark.integration
def test_deleting_a_workload_leaves_the_rest_working(tmp_path: Path, data_dir: Path) -> None:
    # GIVEN a tree without the train workload (the one the others' defaults involve most)
    tree = _copy_tree(tmp_path / "tree")
    shutil.rmtree(tree / "serverless_hpc" / "workloads" / "train")
    # THEN the command line still helps
    for args in (("--help",), ("bench", "--help")):
        helped = _run(tree, "-m", "serverless_hpc.cli", *args)
        assert helped.returncode == 0, helped.stderr
        assert "train-epochs" not in helped.stdout
    # ... another workload runs and its report is built
    out = tmp_path / "run"
    done = _bench(
        tree,
        out,
        "--workloads",
        "dataproc",
        "--shards",
        "1,2",
        "--param",
        "dataproc.split=test",
        "--data-dir",
        str(data_dir),
    )
    assert done.returncode == 0, done.stderr
    assert (out / "report.html").is_file() and (out / "headline.json").is_file()
    # ... and the CDK app synthesizes, with no function for the deleted workload
    if shutil.which("node") is None:
        pytest.skip("node not found: the CDK app (jsii) cannot be synthesized here")
    synth = _run(
        tree,
        "-c",
        "import aws_cdk as cdk, app, json\n"
        f"a = cdk.App(context={{'dataset_dir': {str(data_dir)!r}, 'nag': 'false'}},"
        f" outdir={str(tmp_path / 'cdk.out')!r})\n"
        "app.build(a)\n"
        "a.synth()\n",
        timeout=600,
    )
    assert synth.returncode == 0, synth.stderr[-3000:]
    (template,) = (tmp_path / "cdk.out").glob("*.template.json")
    outputs = json.loads(template.read_text())["Outputs"]
    assert "DataprocFunctionName" in outputs and "TrainFunctionName" not in outputs
