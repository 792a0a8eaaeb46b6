"""`cli.ray_worker`: Ray's worker program with the modules Ray imports eagerly but seldom uses
loaded on first use. Each test runs in a fresh interpreter (a finder on ``sys.meta_path`` must
not leak into pytest's process) on a small package it writes, whose modules record that they ran."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from cli import ray_worker
from cli.ray_head import lean_head_params
from tests.unit.fresh_interpreter import ROOT, run_fresh


def _package(tmp_path: Path) -> Path:
    """``lazypkg``: a package, a submodule and a module-level ``__getattr__``; each records its run."""
    pkg = tmp_path / "lazypkg"
    pkg.mkdir()
    record = "import builtins; builtins.RAN = getattr(builtins, 'RAN', []) + [__name__]\n"
    (pkg / "__init__.py").write_text(record + textwrap.dedent("""
        VALUE = 42
        def __getattr__(name):
            if name == "DYNAMIC":
                return "made on demand"
            raise AttributeError(name)
    """))
    (pkg / "sub.py").write_text(record + "from lazypkg import VALUE\nDOUBLE = VALUE * 2\n")
    (tmp_path / "slowmod.py").write_text(record + "import time\ntime.sleep(0.2)\nDONE = True\n")
    return tmp_path


def _run(tmp_path: Path, body: str) -> dict[str, object]:
    script = textwrap.dedent(f"""
        import builtins, json, sys
        sys.path.insert(0, {str(_package(tmp_path))!r})
        from cli.ray_worker import install_lazy_imports
        install_lazy_imports(["lazypkg", "slowmod"])
        builtins.RAN = []
        out = {{}}
    """) + textwrap.dedent(body) + "\nprint(json.dumps(out))\n"
    return json.loads(run_fresh(script).splitlines()[-1])  # type: ignore[no-any-return]


def test_an_imported_lazy_module_runs_only_when_an_attribute_is_first_read(tmp_path: Path) -> None:
    out = _run(tmp_path, """
        import lazypkg
        import lazypkg as again  # a second import reads __spec__, which must not run it
        out["after_import"] = list(builtins.RAN)
        out["in_sys_modules"] = "lazypkg" in sys.modules
        out["name"] = lazypkg.__name__
        out["after_name"] = list(builtins.RAN)
        out["value"] = lazypkg.VALUE
        out["after_value"] = list(builtins.RAN)
        out["same_module"] = again is lazypkg and sys.modules["lazypkg"] is lazypkg
        out["type"] = type(lazypkg).__name__
    """)

    assert out["after_import"] == [] and out["in_sys_modules"] is True
    assert out["name"] == "lazypkg" and out["after_name"] == []
    assert out["value"] == 42 and out["after_value"] == ["lazypkg"]
    assert out["same_module"] is True and out["type"] == "module"


def test_from_imports_submodules_and_a_module_getattr_behave_as_with_a_plain_import(tmp_path: Path) -> None:
    out = _run(tmp_path, """
        from lazypkg import VALUE
        out["value"] = VALUE
        import lazypkg.sub
        out["double"] = lazypkg.sub.DOUBLE
        out["dynamic"] = __import__("lazypkg").DYNAMIC
        try:
            __import__("lazypkg").MISSING
        except AttributeError as error:
            out["missing"] = str(error)
        out["ran"] = list(builtins.RAN)
        out["path"] = list(__import__("lazypkg").__path__) != []
    """)

    assert out["value"] == 42 and out["double"] == 84 and out["dynamic"] == "made on demand"
    assert out["missing"] == "MISSING"
    assert out["ran"] == ["lazypkg", "lazypkg.sub"], "the package runs once, before its submodule"
    assert out["path"] is True


def test_threads_reading_a_lazy_module_at_once_run_it_once_and_all_see_it_whole(tmp_path: Path) -> None:
    out = _run(tmp_path, """
        import threading
        import slowmod
        seen = []
        threads = [threading.Thread(target=lambda: seen.append(slowmod.DONE)) for _ in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        out["seen"] = seen
        out["ran"] = list(builtins.RAN)
    """)

    assert out["seen"] == [True] * 8
    assert out["ran"] == ["slowmod"]


def test_modules_not_named_and_modules_already_imported_import_as_usual(tmp_path: Path) -> None:
    out = _run(tmp_path, """
        import json as j, types
        out["json"] = type(sys.modules["json"]) is types.ModuleType
        from cli.ray_worker import install_lazy_imports, LazyImports
        install_lazy_imports(["other"])  # a second call keeps the one finder
        out["finders"] = sum(isinstance(f, LazyImports) for f in sys.meta_path)
        import decimal
        out["decimal"] = type(decimal).__name__
    """)

    assert out == {"json": True, "finders": 1, "decimal": "module"}


def test_the_worker_program_runs_rays_worker_as_main_with_its_arguments_and_lazy_modules(tmp_path: Path) -> None:
    fake = tmp_path / "default_worker.py"
    fake.write_text(textwrap.dedent("""
        import json, sys
        import requests  # as ``import ray`` does
        if __name__ == "__main__":
            print(json.dumps({"argv": sys.argv, "path0": sys.path[0], "requests": type(requests).__name__}))
    """))
    script = textwrap.dedent(f"""
        import sys
        from cli import ray_worker
        ray_worker.default_worker_path = lambda: {str(fake)!r}
        sys.argv = ["cli/ray_worker.py", "--node-ip-address=127.0.0.1", "--worker-type=WORKER"]
        ray_worker.main()
    """)

    out = json.loads(run_fresh(script).splitlines()[-1])

    assert out["argv"] == [str(fake), "--node-ip-address=127.0.0.1", "--worker-type=WORKER"]
    assert out["path0"] == str(tmp_path)
    assert out["requests"] == "_LazyModule"


def test_rays_worker_is_found_without_importing_ray() -> None:
    out = run_fresh("import sys\nfrom cli.ray_worker import default_worker_path\n"
                    "print(default_worker_path(), 'ray' in sys.modules)")

    path, imported = out.split()
    assert Path(path).is_file() and path.endswith("ray/_private/workers/default_worker.py")
    assert imported == "False"


def test_the_lean_head_starts_its_workers_with_this_program() -> None:
    params = lean_head_params(num_cpus=2, object_store_memory=1, system_config={})

    assert params["worker_path"] == ray_worker.__file__
    assert Path(params["worker_path"]).resolve() == ROOT / "cli" / "ray_worker.py"


def test_each_lazy_module_is_still_unloaded_once_rays_worker_module_is_imported() -> None:
    """What the list is for, checked against the installed Ray (an upgrade that imports one of
    them with ``from ... import`` would load it at once, and this says which)."""
    out = run_fresh(textwrap.dedent("""
        import json, sys
        from cli.ray_worker import LAZY_MODULES, install_lazy_imports
        install_lazy_imports()
        import ray._private.workers.default_worker
        print(json.dumps({name: type(sys.modules.get(name)).__name__ for name in LAZY_MODULES}))
    """))

    assert json.loads(out.splitlines()[-1]) == dict.fromkeys(ray_worker.LAZY_MODULES, "_LazyModule")


def test_a_lazy_module_whose_code_fails_raises_at_first_use_and_a_later_import_tries_again(tmp_path: Path) -> None:
    (tmp_path / "flaky.py").write_text("import builtins\nif not getattr(builtins, 'FIXED', False):\n"
                                       "    raise RuntimeError('not ready')\nOK = 1\n")
    out = _run(tmp_path, """
        sys.meta_path[0].names = frozenset({"flaky"})
        import flaky
        try:
            flaky.OK
        except RuntimeError as error:
            out["error"] = str(error)
        out["in_sys_modules"] = "flaky" in sys.modules
        builtins.FIXED = True
        import flaky
        out["ok"] = flaky.OK
    """)

    assert out == {"error": "not ready", "in_sys_modules": False, "ok": 1}


_IDLE_SCRIPT = """
import json, os, sys, types
os.environ["RAY_SERVE_ENABLE_DIRECT_INGRESS"] = "{ingress}"
import ray
from ray._private.function_manager import FunctionActorManager
from cli import ray_worker

running = {{"name": ""}}
ray.get_runtime_context = lambda: types.SimpleNamespace(get_task_function_name=lambda: running["name"])
FunctionActorManager.load_actor_class = lambda self, job_id, descriptor: descriptor.class_name
installed = ray_worker.lower_priority_of_idle_actors()
load = FunctionActorManager.load_actor_class

def nice():
    return sorted({{os.getpriority(os.PRIO_PROCESS, t) for t in ray_worker._this_process_threads()}})

def descriptor(module, cls):
    return types.SimpleNamespace(module_name=module, class_name=cls)

out = {{"installed": installed, "start": nice()}}
running["name"] = "ray.serve._private.replica.Replica.push_proxy_handle"  # a handle to the proxy
out["loaded"] = load(None, None, descriptor("ray.serve._private.proxy", "ProxyActor"))
out["after_handle"] = nice()
running["name"] = "actors.store.Store.__init__"  # another actor's creation
load(None, None, descriptor("actors.store", "Store"))
out["after_other"] = nice()
running["name"] = "ray.serve._private.proxy.ProxyActor.__init__"  # the proxy's own creation
load(None, None, descriptor("ray.serve._private.proxy", "ProxyActor"))
out["after_creation"] = nice()
load(None, None, descriptor("ray.serve._private.proxy", "ProxyActor"))  # again: once only
out["after_again"] = nice()
print(json.dumps(out))
"""


def test_a_worker_lowers_its_priority_when_it_becomes_the_idle_proxy_not_for_a_handle_to_it() -> None:
    out = json.loads(run_fresh(_IDLE_SCRIPT.format(ingress="1")).splitlines()[-1])

    start = out["start"]
    assert out["installed"] is True and out["loaded"] == "ProxyActor"
    assert out["after_handle"] == start and out["after_other"] == start
    assert out["after_creation"] == sorted({min(19, n + ray_worker.IDLE_NICENESS) for n in start})
    assert out["after_again"] == out["after_creation"]


def test_without_direct_ingress_the_proxy_serves_requests_and_keeps_its_priority() -> None:
    out = json.loads(run_fresh(_IDLE_SCRIPT.format(ingress="0")).splitlines()[-1])

    assert out["installed"] is False
    assert out["after_creation"] == out["start"]
