"""Running the same kit on a Flyte cluster: connect, check, deploy.

Connecting uses Flyte's own configuration (`flyte.init_from_config`): a config file path,
or Flyte's usual discovery (`./config.yaml`, `.flyte/config.yaml`, `FLYTECTL_CONFIG`,
`~/.flyte/config.yaml`) when the setting is "auto". A dry run connects to a placeholder
endpoint and serialises everything without a cluster, which is how the kit checks its
deployment offline.
"""

from __future__ import annotations

import ast
import inspect
import logging
import textwrap
from pathlib import Path

import flyte

from refine_kit.envs import PACKAGE_DIR, driver_env, llm_env
from refine_kit.notebook_job import notebook_env

#: Where the code bundle is rooted: the folder that holds the `refine_kit` package.
SOURCE_ROOT = PACKAGE_DIR.parent
#: A placeholder endpoint for dry runs: nothing listens there and nothing is sent to it.
DRY_RUN_ENDPOINT = "dns:///localhost:30080"
ENVIRONMENTS: tuple[flyte.TaskEnvironment, ...] = (driver_env, llm_env, notebook_env)


def connect(cluster: str, *, verbose: bool = False) -> None:
    """Point Flyte at a cluster: `cluster` is a config file path, or "auto" to discover one."""
    path = None if cluster == "auto" else Path(cluster).expanduser()
    if path is not None and not path.is_file():
        from refine_kit.errors import ConfigError

        raise ConfigError(f"cluster: config file {cluster!r} does not exist")
    flyte.init_from_config(
        path,
        root_dir=SOURCE_ROOT,
        log_level=logging.INFO if verbose else logging.WARNING,
        sync_local_sys_paths=False,  # the image carries the kit; a local venv must not travel
    )


def connect_dry_run(project: str = "refine-kit", domain: str = "development") -> None:
    """Configure Flyte for serialisation only: no cluster is needed or contacted."""
    flyte.init(
        endpoint=DRY_RUN_ENDPOINT,
        insecure=True,
        project=project,
        domain=domain,
        root_dir=SOURCE_ROOT,
        log_level=logging.CRITICAL,
        sync_local_sys_paths=False,
    )


def deploy(cluster: str | None = None, *, dry_run: bool = False) -> list:
    """Register the environments: driver_env (bringing llm_env along through depends_on)
    and notebook_env, which runs the tutorial notebooks as jobs.

    Fails before deploying when a task calls an environment its own does not depend on,
    which Flyte's dry run does not catch.
    """
    problems = undeclared_dependencies(ENVIRONMENTS)
    if problems:
        raise RuntimeError("depends_on is incomplete:\n" + "\n".join(problems))
    if dry_run and cluster is None:
        connect_dry_run()
    elif cluster is not None:
        connect(cluster)
    return flyte.deploy(driver_env, notebook_env, dry_run=dry_run)


def undeclared_dependencies(envs: tuple[flyte.TaskEnvironment, ...]) -> list[str]:
    """Tasks that call a task of another environment missing from their own `depends_on`.

    Reads each task's source and resolves the names it calls against every environment's
    tasks, so a missing dependency is found before a deployment would fail at run time.
    """
    owner: dict[str, flyte.TaskEnvironment] = {}
    for env in envs:
        for task in env.tasks.values():
            owner[task.func.__name__] = env
    problems = []
    for env in envs:
        allowed = {env.name, *(dep.name for dep in env.depends_on)}
        for task in env.tasks.values():
            for name in sorted(_called_names(task.func)):
                callee = owner.get(name)
                if callee is not None and callee.name not in allowed:
                    problems.append(
                        f"{env.name}.{task.func.__name__} calls {callee.name}.{name}, "
                        f"but {env.name!r} does not list {callee.name!r} in depends_on"
                    )
    return problems


def _called_names(func: object) -> set[str]:
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


def _direct_names(func: object) -> set[str]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
