"""The nightly GPU workflow parses, has the documented shape, and only uses real CLI flags."""
from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from suite.cli import deploy_bench as bench_cli
from suite.cli import history as history_cli
from suite.cli import merge as merge_cli
from suite.cli import run as run_cli

from conftest import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "nightly-gpu.yml"


def commands(job: dict, env: dict[str, str], shard: str = "3") -> list[list[str]]:
    """Every ``run_suite.py`` invocation of a job, as argv after ``run_suite.py``, with the
    matrix value and the workflow's env substituted as the runner would."""
    out = []
    for step in job["steps"]:
        text = step.get("run", "").replace("${{ matrix.shard }}", shard)
        for name, value in env.items():
            text = text.replace(f"${name}", value)
        for line in text.splitlines():
            if "run_suite.py" in line:
                out.append(shlex.split(line.split("run_suite.py", 1)[1].split("|")[0]))
    return out


def test_workflow_structure_and_commands() -> None:
    wf = yaml.safe_load(WORKFLOW.read_text())
    triggers = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` as True
    assert "schedule" in triggers and "workflow_dispatch" in triggers
    shard, merge = wf["jobs"]["shard"], wf["jobs"]["merge"]
    assert "self-hosted" in shard["runs-on"] and "gpu" in shard["runs-on"]
    assert shard["strategy"]["matrix"]["shard"] == [1, 2, 3, 4] and shard["strategy"]["fail-fast"] is False
    assert merge["needs"] == "shard" and merge["if"] == "always()"
    uses = [s.get("uses", "") for s in merge["steps"]]
    assert any(u.startswith("actions/download-artifact") for u in uses)
    assert any(u.startswith("actions/cache/restore") for u in uses)
    assert any(u.startswith("actions/cache/save") for u in uses)
    assert any(s.get("uses", "").startswith("actions/upload-artifact") for s in shard["steps"])

    sweep = commands(shard, wf["env"])
    assert len(sweep) == 1
    args = run_cli.given_options(sweep[0])  # every flag exists in the sweep's parser
    assert args.shard == "3/4" and args.device == "cuda" and args.profile == "smoke"
    assert f"/{len(shard['strategy']['matrix']['shard'])}" in args.shard
    upload = next(s["with"]["path"] for s in shard["steps"] if s.get("uses", "").startswith("actions/upload-artifact"))
    assert str(args.out).replace("3", "${{ matrix.shard }}") in upload  # the shard's --out is what is uploaded

    merge_cmds = commands(merge, wf["env"])
    m = next(c for c in merge_cmds if c[0] == "merge")
    margs = merge_cli.parser().parse_args(m[1:])
    assert margs.fail_on_regression and margs.compare == margs.history == Path("results/history")
    h = next(c for c in merge_cmds if c[0] == "history")
    assert history_cli.parser().parse_args(h[1:]).metric == "latency"


def test_deploy_bench_job_measures_real_sizes_under_every_runtime_and_is_judged() -> None:
    wf = yaml.safe_load(WORKFLOW.read_text())
    job = wf["jobs"]["deploy-bench"]
    assert "gpu" in job["runs-on"]
    env = dict(wf["env"])
    cmds = []
    for step in job["steps"]:
        text = step.get("run", "")
        for line in text.splitlines():
            if "run_suite.py deploy-bench" in line:
                line = line.replace("$model", "deit_tiny_patch16_224").split("||")[0]
                for name, value in env.items():
                    line = line.replace(f"${name}", value)
                cmds.append(shlex.split(line.split("run_suite.py", 1)[1])[1:])
    assert len(cmds) == 2
    parsed = [bench_cli.parser().parse_args(c) for c in cmds]
    assert {a.model for a in parsed} == {"deit_tiny_patch16_224", "gpt2-small"}
    for a in parsed:
        assert a.runtime == "eager,compile,onnxruntime,cudagraphs" and a.precision == "fp32,bf16"
        assert a.device == "cuda" and a.fail_on_regression and a.compare == a.history
    bench = next(s["run"] for s in job["steps"] if "run_suite.py deploy-bench" in s.get("run", ""))
    assert "swin_tiny_patch4_window7_224" in bench


def _workflow_schema() -> dict:
    """SchemaStore's GitHub workflow schema, as check-jsonschema vendors it."""
    import json
    from importlib import resources
    return json.loads((resources.files("check_jsonschema") / "builtin_schemas" / "vendor" /
                       "github-workflows.json").read_text())


def _as_github_reads_it(wf: dict) -> dict:
    """YAML 1.1 (PyYAML) reads the bare key ``on`` as True; GitHub's parser keeps it a string."""
    return {("on" if k is True else k): v for k, v in wf.items()}


def test_the_workflow_validates_against_the_github_workflow_schema() -> None:
    import copy

    import jsonschema
    schema = _workflow_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    wf = _as_github_reads_it(yaml.safe_load(WORKFLOW.read_text()))
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(wf)]
    assert errors == []
    broken = copy.deepcopy(wf)   # the schema is strict enough to catch a misspelt key or a bad permission
    broken["jobs"]["publish"]["runs_on"] = broken["jobs"]["publish"].pop("runs-on")
    broken["jobs"]["deploy"]["permissions"]["pages"] = "admin"
    broken["jobs"]["merge"]["steps"][0]["run"] = "make venv"   # a step with both `uses` and `run`
    found = {"/".join(map(str, e.absolute_path)) for e in validator.iter_errors(broken)}
    assert {p.split("/")[1] for p in found if p.startswith("jobs/")} == {"publish", "deploy", "merge"}


def test_the_site_is_published_after_merge_and_the_history_is_kept_on_its_branch() -> None:
    from suite.cli import publish as publish_cli
    wf = yaml.safe_load(WORKFLOW.read_text())
    jobs = wf["jobs"]
    publish, deploy, merge = jobs["publish"], jobs["deploy"], jobs["merge"]
    assert publish["needs"] == "merge" and "needs.merge.result == 'failure'" in publish["if"]   # a regressed night too
    cmd = next(c for c in commands(publish, wf["env"]) if c[0] == "publish")
    args = publish_cli.parser().parse_args(cmd[1:])
    assert args.inputs == [Path("merged"), Path("results/history")]
    upload = next(s for s in publish["steps"] if s.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert Path(upload["with"]["path"]) == args.out
    assert next(s for s in publish["steps"] if s.get("uses", "").startswith("actions/download-artifact"))[
        "with"]["name"] == "merged"
    assert deploy["needs"] == "publish" and deploy["permissions"] == {"pages": "write", "id-token": "write"}
    # the implicit success() would look past publish at merge and skip the deploy after a regression
    assert "needs.publish.result == 'success'" in deploy["if"] and "cancelled()" in deploy["if"]
    assert "cancelled()" in publish["if"] and "always()" not in publish["if"]
    assert wf["permissions"] == {"contents": "read"}   # the default; only merge, deploy-bench and deploy widen it
    assert deploy["environment"]["name"] == "github-pages"
    assert any(s.get("uses", "").startswith("actions/deploy-pages") for s in deploy["steps"])
    for job, folder in ((merge, "results/history"), (jobs["deploy-bench"], "$BENCH_HISTORY")):
        runs = [s.get("run", "") for s in job["steps"]]
        pull = next(i for i, r in enumerate(runs) if "history_branch.sh pull" in r)
        push = next(i for i, r in enumerate(runs) if "history_branch.sh push" in r)
        judged = next(i for i, r in enumerate(runs) if "--history" in r)
        assert pull < judged < push and folder in runs[pull] and folder in runs[push]
        # pushed after a regression too, but only from a history that the pull brought back
        pull_id = job["steps"][pull]["id"]
        assert job["steps"][push]["if"] == f"always() && steps.{pull_id}.outcome == 'success'"
        assert "git ls-remote --exit-code" in runs[pull] and "$NORMBENCH_HISTORY_BRANCH" in runs[pull]
        assert job["permissions"] == {"contents": "write"}
    assert wf["env"]["NORMBENCH_HISTORY_BRANCH"] == "normbench-history"
    assert (ROOT / "scripts" / "history_branch.sh").stat().st_mode & 0o111   # executable, as the steps call it
