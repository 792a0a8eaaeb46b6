"""The program of the engine's Ray worker processes: Ray's own ``default_worker.py``, with the
modules Ray imports eagerly but a worker of this engine seldom uses loaded on first use instead.

Every Ray worker process (each actor, Serve's controller, proxy and replica) starts by importing
``ray``, about 0.8 CPU-s here, and on a 2-core machine the engine's start-up is CPU-bound. About a
quarter of that import is code a worker only needs if it uses the feature: ``requests`` (Ray's
TPU detection from GCE metadata), ``jsonschema`` (runtime-env plugin schemas), ``yaml``
(runtime-env files) and Ray's debugger. `LAZY_MODULES` lists them; together ~0.3 CPU-s a process.
Most of Ray's other optional modules are imported with ``from ... import``, which needs them run.

A lazy module is created as usual and put in ``sys.modules`` when first imported, but its code
runs only when something first reads an attribute it does not have yet (``requests.get``,
``from yaml import safe_load``, or a submodule import, which needs the package's ``__path__``).
So every import still succeeds and every module still runs before it is used; only *when* it
runs changes. Unlike the standard library's ``importlib.util.LazyLoader``, reading
``__spec__``/``__name__`` does not load it, so a second ``import requests`` elsewhere does not.

The worker that becomes Serve's HTTP proxy also lowers its own CPU priority (`IDLE_ACTORS`) as
it loads the proxy's class: under direct ingress the proxy serves nothing (the API replica
listens itself), but Ray 2.60 still starts one on the head, and its ~2 CPU-s of start-up (mostly
importing Serve) competed with the engine's actors for two cores. At 10 nice levels below, it
starts on what the engine leaves; its readiness checks allow 30 s each (`serve.options`).

`cli.ray_head` starts its lean head with this file as the raylet's ``worker_path``
(``python cli/ray_worker.py <Ray's worker arguments>``). This file imports nothing of aitrader's;
before it hands over to Ray's worker it imports only the standard library and Ray's function
manager (which Ray's worker imports first thing anyway), with `LAZY_MODULES` already lazy.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":  # run as Ray's worker program: its own folder (cli/) must shadow nothing
    del sys.path[0]

import functools
import importlib.machinery
import importlib.util
import os
import runpy
import threading
import types
from collections.abc import Iterable
from typing import Any

#: Imported when ``import ray`` runs, used by few workers: loaded when first used instead.
LAZY_MODULES: tuple[str, ...] = ("requests", "jsonschema", "yaml", "ray.util.rpdb")


#: Actors (module, class) that are idle under direct ingress, started at `IDLE_NICENESS`.
IDLE_ACTORS = frozenset({("ray.serve._private.proxy", "ProxyActor")})
#: Nice levels an idle actor's process starts below the others.
IDLE_NICENESS = 10


class _LazyModule(types.ModuleType):
    """A module whose code has not run yet; the first attribute it lacks runs it."""

    def __getattr__(self, attr: str) -> Any:
        # Only called for attributes not in the module's dict: before it has run, nearly all.
        _load(self)
        if type(self) is _LazyModule:
            # Only the thread running the module's code gets here (others wait in _load): it reads
            # an attribute not yet set, as a plain module mid-import would answer.
            module_getattr = self.__dict__.get("__getattr__")
            if module_getattr is not None:
                return module_getattr(attr)
            raise AttributeError(f"partially initialized module {self.__name__!r} has no attribute {attr!r}")
        return getattr(self, attr)


def _load(module: types.ModuleType) -> None:
    """Run a lazy module's code, once; other threads reading it meanwhile wait until it has run."""
    lock = module.__dict__.get("_lazy_lock")
    if lock is None:  # run already
        return
    with lock:  # re-entrant: the running code may read its own module
        state = module.__dict__
        if type(module) is not _LazyModule or state.get("_lazy_running"):
            return
        state["_lazy_running"] = True
        path = state.pop("_lazy_path", None)
        if path is not None:
            state["__path__"] = path
        spec = module.__spec__
        assert spec is not None and spec.loader is not None
        try:
            spec.loader.exec_module(module)
        except BaseException:
            # As a failed import does: gone from sys.modules, so the next import tries again.
            if sys.modules.get(spec.name) is module:
                del sys.modules[spec.name]
            raise
        finally:
            module.__class__ = types.ModuleType
            state.pop("_lazy_running", None)
            state.pop("_lazy_lock", None)


class _LazyLoader:
    """Wraps a module's real loader: creates the module, defers running it to `_load`."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.loader.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: types.ModuleType) -> None:
        spec = module.__spec__
        assert spec is not None
        spec.loader = self.loader
        module.__loader__ = self.loader
        state = module.__dict__
        # Without ``__path__`` a submodule import reads it through __getattr__, which runs the
        # package first, as a submodule import always does.
        if "__path__" in state:
            state["_lazy_path"] = state.pop("__path__")
        state["_lazy_lock"] = threading.RLock()
        module.__class__ = _LazyModule


class LazyImports:
    """A ``sys.meta_path`` finder that makes the named modules lazy (and nothing else)."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = frozenset(names)

    def find_spec(self, name: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name not in self.names:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is None or not hasattr(spec.loader, "exec_module"):
                    return None  # namespace packages and old-style loaders: imported as usual
                spec.loader = _LazyLoader(spec.loader)  # type: ignore[assignment]
                return spec
        return None


def install_lazy_imports(names: Iterable[str] = LAZY_MODULES) -> LazyImports:
    """Make ``names`` lazy in this process from now on (modules already imported stay as they are)."""
    for finder in sys.meta_path:
        if isinstance(finder, LazyImports):
            return finder
    finder = LazyImports(names)
    sys.meta_path.insert(0, finder)
    return finder


def default_worker_path() -> str:
    """The path of Ray's ``default_worker.py``, found without importing Ray."""
    spec = importlib.util.find_spec("ray")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("Ray is not installed in this Python environment")
    return os.path.join(list(spec.submodule_search_locations)[0], "_private", "workers", "default_worker.py")


def lower_priority(threads: Iterable[int], by: int) -> None:
    """Raise the nice value of each of ``threads`` (Linux: niceness is per thread) by ``by``, to at
    most 19. Elsewhere, or for a thread already gone, nothing happens."""
    for thread in threads:
        try:
            os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + by))
        except OSError:
            continue


def _this_process_threads() -> list[int]:
    try:
        return [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:  # not Linux
        return []


def lower_priority_of_idle_actors() -> bool:
    """When Serve runs direct ingress, make this worker lower its priority if it becomes one of
    `IDLE_ACTORS` (wraps Ray's ``FunctionActorManager.load_actor_class``, which every actor's
    class goes through before it is imported). False, changing nothing, if this Ray has no such method."""
    if os.environ.get("RAY_SERVE_ENABLE_DIRECT_INGRESS") != "1":
        return False
    try:
        from ray._private.function_manager import FunctionActorManager
    except ImportError:
        return False
    original = getattr(FunctionActorManager, "load_actor_class", None)
    if original is None:
        return False

    lowered = threading.Event()

    @functools.wraps(original)
    def load_actor_class(self: Any, job_id: Any, descriptor: Any, *args: Any, **kwargs: Any) -> Any:
        # Ray loads a class here for its own actor's creation, and also for every handle this
        # worker receives (Serve's replica gets the proxy's): only the first counts.
        if not lowered.is_set() and _creating(descriptor) in IDLE_ACTORS:
            lowered.set()
            lower_priority(_this_process_threads(), IDLE_NICENESS)
        return original(self, job_id, descriptor, *args, **kwargs)

    FunctionActorManager.load_actor_class = load_actor_class
    return True


def _creating(descriptor: Any) -> tuple[str, str] | None:
    """(module, class) of ``descriptor`` if this worker is running that class's constructor, else None."""
    module, cls = getattr(descriptor, "module_name", None), getattr(descriptor, "class_name", None)
    if not module or not cls:
        return None
    import ray

    try:
        running = ray.get_runtime_context().get_task_function_name()
    except Exception:  # no task context: not a creation
        return None
    return (module, cls) if running == f"{module}.{cls}.__init__" else None


def main() -> None:
    """Run Ray's worker as ``python default_worker.py <args>`` would, with `LAZY_MODULES` lazy and
    `IDLE_ACTORS` at a lower priority."""
    install_lazy_imports()
    lower_priority_of_idle_actors()
    worker = default_worker_path()
    sys.argv[0] = worker
    sys.path.insert(0, os.path.dirname(worker))  # as ``python default_worker.py`` would have it
    runpy.run_path(worker, run_name="__main__")


if __name__ == "__main__":
    main()
