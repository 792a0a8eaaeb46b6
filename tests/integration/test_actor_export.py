"""The supervisor hands the graph's actor classes to Ray before it builds the graph
(`actors.graph.export_actor_classes`): creating an actor afterwards finds its class exported and works."""

from __future__ import annotations

import importlib

import pytest
import ray

from actors.graph import ACTOR_CLASSES, export_actor_classes

pytestmark = pytest.mark.usefixtures("ray_session")


def test_every_class_of_the_graph_is_exported_once_and_its_actors_still_start() -> None:
    worker = ray._private.worker.global_worker
    classes = [getattr(importlib.import_module(module), name) for module, name in ACTOR_CLASSES]

    export_actor_classes()
    exported = [cls.__ray_metadata__.last_export_cluster_and_job for cls in classes]
    export_actor_classes()  # again: nothing left to export

    assert exported == [worker.current_cluster_and_job] * len(classes)
    hub = dict(zip([name for _module, name in ACTOR_CLASSES], classes, strict=True))["EventHub"]
    actor = hub.options(name="export-test-events").remote()  # type: ignore[attr-defined]
    try:
        assert ray.get(actor.ping.remote(), timeout=120) is not None
    finally:
        ray.kill(actor)
