"""Running the same kit on a Flyte cluster: check the environments, deploy them.

Connecting lives in `connection` (a cluster config, or a dry run's placeholder endpoint);
a dry run serialises everything without a cluster, which is how the kit checks its
deployment offline.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flyte
from google.protobuf.json_format import MessageToDict

from refine_kit.connection import connect, connect_dry_run
from refine_kit.notebook_job import notebook_env

# From `tasks`: a task joins its environment when its module is imported, and a deployment
# made in a fresh process would otherwise ship environments with no tasks in them.
from refine_kit.tasks import driver_env, llm_env

#: The environments a deployment registers (llm_env comes with driver_env's depends_on).
ENVIRONMENTS: tuple[flyte.TaskEnvironment, ...] = (driver_env, llm_env, notebook_env)


def deploy(cluster: str | None = None, *, dry_run: bool = False) -> list[Any]:
    """Register the environments: driver_env (bringing llm_env along through depends_on)
    and notebook_env, which runs the tutorial notebooks as jobs.

    Fails before deploying when a task calls an environment its own does not depend on,
    which Flyte's dry run does not catch.
    """
    problems = undeclared_dependencies(ENVIRONMENTS)
    if problems:
        raise RuntimeError("depends_on is incomplete:\n" + "\n".join(problems))
    missing = missing_tasks(ENVIRONMENTS)
    if missing:
        raise RuntimeError("the environments are incomplete:\n" + "\n".join(missing))
    if dry_run and cluster is None:
        connect_dry_run()
    elif cluster is not None:
        connect(cluster)
    return flyte.deploy(driver_env, notebook_env, dry_run=dry_run)


#: What each environment must carry; a deployment without one of them would run nothing.
EXPECTED_TASKS = {
    "llm-worker": {"refine_report", "format_outputs"},
    "driver": {"report_batch_pipeline"},
    "notebook-runner": {"run_notebook"},
}


def missing_tasks(envs: tuple[flyte.TaskEnvironment, ...]) -> list[str]:
    """The kit's tasks that are not registered on their environment (checked before deploying)."""
    problems = []
    for env in envs:
        have = {t.func.__name__ for t in _function_tasks(env)}
        for name in sorted(EXPECTED_TASKS.get(env.name, set()) - have):
            problems.append(f"{env.name} has no task {name!r}")
    return problems


def deployment_rows(deployments: list[Any]) -> list[dict[str, str]]:
    """One row per deployed task: what a reader checks before trusting a deployment."""
    rows = []
    for deployment in deployments:
        for env_name, env in deployment.envs.items():
            reuse = env.env.reusable
            replicas = reuse and "-".join(dict.fromkeys(str(r) for r in reuse.replicas))
            for entity in env.deployed_entities:
                template = entity.deployed_task.task_template
                requests = MessageToDict(template.container)["resources"]["requests"]
                secrets = MessageToDict(template.security_context).get("secrets", [])
                meta = template.metadata
                rows.append(
                    {
                        "environment": env_name,
                        "task": template.id.name,
                        "retries": str(meta.retries.retries),
                        "cache version": meta.discovery_version if meta.discoverable else "-",
                        "reuse": f"{replicas} replicas x {reuse.concurrency}" if reuse else "-",
                        "secret": ", ".join(s["key"] for s in secrets) or "-",
                        "resources": ", ".join(f"{r['name']} {r['value']}" for r in requests),
                    }
                )
    return rows


#: The layer kinds `image_layers` names itself; any other layer keeps its Flyte class name.
_LAYER_KINDS = {"PipPackages": "pip", "AptPackages": "apt", "CopyConfig": "copy"}


def image_layers(env: flyte.TaskEnvironment) -> list[dict[str, Any]]:
    """What an environment's image adds to its base image, one dict per layer, in build order.

    `flyte.Image` is built with public methods (`with_pip_packages`, `with_source_folder`,
    ...) but offers no public way to read them back, so this is the one place the kit does,
    for the notebooks and tests. Each dict has a `kind`: "pip" and "apt" layers carry their
    `packages` (a list of requirement strings); a "copy" layer (a file or folder copied into
    the image) carries `src` (the local `Path`) and `dst` (its path in the image). Any other
    layer is named by its Flyte class name and carries nothing else. The base image itself is
    the public `env.image.base_image`.
    """
    layers: list[dict[str, Any]] = []
    for layer in getattr(env.image, "_layers", ()):
        name = type(layer).__name__
        kind = _LAYER_KINDS.get(name, name)
        entry: dict[str, Any] = {"kind": kind}
        if kind in ("pip", "apt"):
            entry["packages"] = list(getattr(layer, "packages", None) or ())
        elif kind == "copy":
            entry["src"] = Path(layer.src)
            entry["dst"] = str(layer.dst)
        layers.append(entry)
    return layers


def undeclared_dependencies(envs: tuple[flyte.TaskEnvironment, ...]) -> list[str]:
    """Tasks that call a task of another environment missing from their own `depends_on`.

    Reads each task's source and resolves the names it calls against every environment's
    tasks, so a missing dependency is found before a deployment would fail at run time.
    """
    owner: dict[str, flyte.TaskEnvironment] = {}
    for env in envs:
        for task in _function_tasks(env):
            owner[task.func.__name__] = env
    problems = []
    for env in envs:
        allowed = {env.name, *(dep.name for dep in env.depends_on)}
        for task in _function_tasks(env):
            for name in sorted(_called_names(task.func)):
                callee = owner.get(name)
                if callee is not None and callee.name not in allowed:
                    problems.append(
                        f"{env.name}.{task.func.__name__} calls {callee.name}.{name}, "
                        f"but {env.name!r} does not list {callee.name!r} in depends_on"
                    )
    return problems


def _function_tasks(
    env: flyte.TaskEnvironment,
) -> list[flyte.AsyncFunctionTaskTemplate[..., Any, Any]]:
    """The environment's tasks that wrap a Python function (the only ones with source)."""
    return [t for t in env.tasks.values() if isinstance(t, flyte.AsyncFunctionTaskTemplate)]


def _called_names(func: Callable[..., Any]) -> set[str]:
    """Every name a function calls directly or passes on (e.g. `task.override(...)`)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
    names.discard(getattr(func, "__name__", ""))
    # Helpers a task calls can call tasks too: follow module-level functions one level in.
    module = inspect.getmodule(func)
    for name in list(names):
        helper = getattr(module, name, None)
        if inspect.isfunction(helper) and helper.__module__ == getattr(module, "__name__", ""):
            names |= _direct_names(helper)
    return names


def _direct_names(func: Callable[..., Any]) -> set[str]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
