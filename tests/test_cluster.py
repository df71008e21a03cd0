"""The cluster path, checked offline with Flyte's own dry-run serialisation."""

from __future__ import annotations

import json
from pathlib import Path

import flyte
import pytest
from flyte._image import CopyConfig, PipPackages

import refine_kit
from refine_kit import cluster
from refine_kit.api import submit_batch
from refine_kit.cache import cache_version
from refine_kit.envs import IMAGE_PACKAGE_DIR, PACKAGE_DIR
from refine_kit.notebook_job import IMAGE_NOTEBOOKS_DIR, NOTEBOOKS_DIR, notebook_path, run_notebook


@pytest.fixture(scope="module")
def deployed() -> dict:
    """Every deployed task template by name, plus the environments, from one dry run."""
    deployments = cluster.deploy(dry_run=True)
    envs = {name: env for deployment in deployments for name, env in deployment.envs.items()}
    tasks = {
        entity.deployed_task.task_template.id.name: entity.deployed_task.task_template
        for env in envs.values()
        for entity in env.deployed_entities
    }
    return {"envs": envs, "tasks": tasks}


def _requests(template) -> dict[str, str]:
    resources = _to_dict(template.container)["resources"]["requests"]
    return {r["name"]: r["value"] for r in resources}


def _image_layers(env: flyte.TaskEnvironment) -> tuple:
    return env.image._layers


def _to_dict(message) -> dict:
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(message)


def test_deploying_the_driver_brings_the_llm_environment_along(deployed: dict) -> None:
    assert set(deployed["envs"]) == {"driver", "llm-worker", "notebook-runner"}
    assert refine_kit.driver_env.depends_on == [refine_kit.llm_env]
    assert set(deployed["tasks"]) == {
        "driver.report_batch_pipeline",
        "llm-worker.refine_report",
        "llm-worker.format_outputs",
        "notebook-runner.run_notebook",
    }


@pytest.mark.parametrize("env_name", ["driver", "llm-worker", "notebook-runner"])
def test_images_carry_the_kit_itself(deployed: dict, env_name: str) -> None:
    layers = _image_layers(deployed["envs"][env_name].env)
    copies = [(c.src, c.dst) for c in layers if isinstance(c, CopyConfig)]
    assert copies[0] == (PACKAGE_DIR, IMAGE_PACKAGE_DIR)
    if env_name == "notebook-runner":
        assert copies[1] == (NOTEBOOKS_DIR, IMAGE_NOTEBOOKS_DIR)
    packages = {p for layer in layers if isinstance(layer, PipPackages) for p in layer.packages}
    assert any(p.startswith("openai") for p in packages)
    assert any(p.startswith("pydantic") for p in packages)
    assert any(p.startswith("unionai-reuse") for p in packages) == (env_name == "llm-worker")


@pytest.mark.parametrize("env", cluster.ENVIRONMENTS, ids=lambda env: env.name)
def test_image_layers_reads_back_what_the_image_was_built_from(env: flyte.TaskEnvironment) -> None:
    layers = cluster.image_layers(env)
    raw = _image_layers(env)
    assert len(layers) == len(raw)  # one entry per layer, in build order
    pip = [layer["packages"] for layer in layers if layer["kind"] == "pip"]
    assert pip == [list(p.packages) for p in raw if isinstance(p, PipPackages)]
    copies = [(layer["src"], layer["dst"]) for layer in layers if layer["kind"] == "copy"]
    assert copies == [(c.src, c.dst) for c in raw if isinstance(c, CopyConfig)]
    assert copies[0] == (PACKAGE_DIR, IMAGE_PACKAGE_DIR)
    reuse = any(p.startswith("unionai-reuse") for packages in pip for p in packages)
    assert reuse == (env.name == "llm-worker")


def test_refine_report_template(deployed: dict) -> None:
    template = deployed["tasks"]["llm-worker.refine_report"]
    assert template.metadata.retries.retries == 3
    assert template.metadata.discovery_version == cache_version()
    reuse = _to_dict(template.custom)
    assert reuse["type"] == "actor"
    spec = reuse["spec"]
    assert (spec["replica_count"], spec["min_replica_count"], spec["parallelism"]) == (2, 2, 4)
    assert (spec["ttl_seconds"], spec["scaledown_ttl_seconds"]) == (1800, 300)
    secrets = _to_dict(template.security_context)["secrets"]
    assert secrets == [
        {"key": "openai-api-key", "mountRequirement": "ENV_VAR", "envVar": "OPENAI_API_KEY"}
    ]
    requests = {
        r["name"]: r["value"] for r in _to_dict(template.container)["resources"]["requests"]
    }
    assert requests == {"CPU": "1", "MEMORY": "2Gi"}
    outputs = _to_dict(template.interface)["outputs"]["variables"]
    assert outputs[0]["value"]["type"]["metadata"]["title"] == "RefineResult"
    inputs = {v["key"] for v in _to_dict(template.interface)["inputs"]["variables"]}
    assert inputs == {"topic", "max_iterations", "quality_threshold", "config"}


def test_driver_template(deployed: dict) -> None:
    template = deployed["tasks"]["driver.report_batch_pipeline"]
    requests = {
        r["name"]: r["value"] for r in _to_dict(template.container)["resources"]["requests"]
    }
    assert requests == {"CPU": "1", "MEMORY": "1Gi"}
    assert not template.HasField("custom")  # no reuse policy: it only orchestrates
    assert not _to_dict(template.security_context)  # no secret: it makes no LLM calls
    outputs = _to_dict(template.interface)["outputs"]["variables"]
    assert outputs[0]["value"]["type"]["metadata"]["title"] == "BatchResult"


def test_a_task_calling_an_undeclared_environment_is_caught() -> None:
    assert cluster.undeclared_dependencies(cluster.ENVIRONMENTS) == []

    helper_env = flyte.TaskEnvironment(name="depends-check-helper")
    caller_env = flyte.TaskEnvironment(name="depends-check-caller")  # no depends_on

    @helper_env.task
    async def shout(text: str) -> str:
        return text.upper()

    @caller_env.task
    async def greet(name: str) -> str:
        return await shout(name)

    problems = cluster.undeclared_dependencies((helper_env, caller_env))
    assert problems == [
        "depends-check-caller.greet calls depends-check-helper.shout, but "
        "'depends-check-caller' does not list 'depends-check-helper' in depends_on"
    ]
    fixed = flyte.TaskEnvironment(name="depends-check-fixed", depends_on=[helper_env])
    fixed.task(greet.func)
    assert cluster.undeclared_dependencies((helper_env, fixed)) == []


def test_remote_batch_is_submitted_as_a_dry_run_without_secrets(
    monkeypatch, tmp_path, capfd
) -> None:
    canary = "sk-canary-remote-5e6f"
    monkeypatch.setenv("OPENAI_API_KEY", canary)
    submission = submit_batch(
        ["Tidal power", "Seed banks"],
        cluster="auto",
        backend="openai",
        dry_run=True,
        output_dir=tmp_path,
    )
    assert submission.remote and submission.dry_run
    assert submission.url.endswith("/runs/dry-run")
    assert submission.run.task_spec.task_template.id.name == "driver.report_batch_pipeline"
    inputs = str(submission.run.inputs)
    assert "Tidal power" in inputs and canary not in inputs
    with pytest.raises(refine_kit.RefineKitError, match="dry run"):
        submission.result()
    assert not list(Path(tmp_path).iterdir())  # nothing written for a run that did not run
    said = capfd.readouterr().err
    assert "refine_kit: dry run of 2 topics for the cluster: serialised here, nothing sent" in said
    assert "(a real run would call https://api.openai.com/v1, model gpt-4o-mini)" in said


def test_a_remote_run_without_a_local_key_is_allowed_the_secret_serves_it() -> None:
    settings = refine_kit.Settings(backend="openai", cluster="auto")
    assert settings.llm_config().backend == "openai"
    with pytest.raises(refine_kit.ConfigError, match="OPENAI_API_KEY"):
        refine_kit.Settings(backend="openai").llm_config()


def test_a_missing_cluster_config_is_named(tmp_path) -> None:
    with pytest.raises(refine_kit.ConfigError, match="cluster: config file"):
        refine_kit.refine_batch(["x"], cluster=str(tmp_path / "nope.yaml"))


def test_deploy_command_dry_run_prints_the_plan() -> None:
    from typer.testing import CliRunner

    from refine_kit.cli import app

    result = CliRunner().invoke(app, ["deploy", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "dry run: nothing was sent" in result.output
    assert "llm-worker.refine_report" in result.output and "2 replicas x 4" in result.output
    assert CliRunner().invoke(app, ["deploy"]).exit_code == 2


def _fresh_process(*args: str) -> str:
    """Run a command in a new interpreter, as a user does: nothing of this test process's
    imports (which already registered every task) can hide a missing one."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_deployment_from_a_fresh_process_ships_every_task() -> None:
    table = _fresh_process("-m", "refine_kit.cli", "deploy", "--dry-run")
    for task in ("report_batch_pipeline", "refine_report", "format_outputs", "run_notebook"):
        assert task in table, table
    # The public environments, deployed with Flyte's own call, carry their tasks too.
    script = (
        "import flyte, refine_kit\n"
        "from refine_kit.connection import connect_dry_run\n"
        "connect_dry_run()\n"
        "for d in flyte.deploy(refine_kit.driver_env, dry_run=True):\n"
        "    for env in d.envs.values():\n"
        "        for e in env.deployed_entities:\n"
        "            print(e.deployed_task.task_template.id.name)\n"
    )
    names = _fresh_process("-c", script).split()
    assert set(names) == {
        "driver.report_batch_pipeline",
        "llm-worker.refine_report",
        "llm-worker.format_outputs",
    }


def test_an_environment_without_its_tasks_is_not_deployed() -> None:
    empty = flyte.TaskEnvironment(name="llm-worker")
    assert cluster.missing_tasks((empty,)) == [
        "llm-worker has no task 'format_outputs'",
        "llm-worker has no task 'refine_report'",
    ]


@pytest.mark.notebooks  # a papermill kernel
def test_a_notebook_runs_as_a_task_with_papermill_parameters(tmp_path: Path) -> None:
    refine_kit.init_flyte()
    params = {"topic": "Notebook job: rooftop gardens", "quality_threshold": 6, "output_dir": "out"}
    run = flyte.with_runcontext(disable_run_cache=True).run(
        run_notebook,
        notebook="01_single_topic_refinement.ipynb",
        parameters_json=json.dumps(params),
    )
    executed = Path(run.outputs()[0].path)
    summary = json.loads((executed.parent / "out" / "notebook_summary.json").read_text())
    assert summary["topic"] == params["topic"] and summary["quality_threshold"] == 6
    assert '"execution_count": 1' in executed.read_text()
    with pytest.raises(refine_kit.ConfigError, match="not one of the kit's notebooks"):
        notebook_path("../README.md")


def test_a_config_file_is_read_the_way_a_real_run_reads_it(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "admin:\n  endpoint: dns:///localhost:30080\n  insecure: true\n"
        "task:\n  project: kit-project\n  domain: staging\n"
    )
    submission = submit_batch(["Glaciers"], cluster=str(config), dry_run=True)
    assert (flyte.current_project(), flyte.current_domain()) == ("kit-project", "staging")
    assert submission.run.task_spec.task_template.id.name == "driver.report_batch_pipeline"
