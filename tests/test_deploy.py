"""deploy/kubernetes: the KEDA example scales each executor pool on the topics and group the
code uses, for models of the catalog that the pool's executor serves."""

from __future__ import annotations

from typing import Any

import yaml

from inferhook.catalog import load_catalog
from inferhook.settings import REPO_ROOT, Settings
from schemas.topics import Topics

EXAMPLE = REPO_ROOT / "deploy" / "kubernetes" / "executors.yaml"


def documents() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(EXAMPLE.read_text()) if doc]


def test_each_scaled_pool_scales_on_its_own_models_topics() -> None:
    catalog = load_catalog(Settings().models_dir)
    topics = Topics()  # the example uses the default prefix
    deployments = {d["metadata"]["name"]: d for d in documents() if d["kind"] == "Deployment"}
    scaled = [d for d in documents() if d["kind"] == "ScaledObject"]
    assert scaled and {s["spec"]["scaleTargetRef"]["name"] for s in scaled} == set(deployments)
    for scaled_object in scaled:
        target = deployments[scaled_object["spec"]["scaleTargetRef"]["name"]]
        (container,) = target["spec"]["template"]["spec"]["containers"]
        assert container["args"][:2] == ["inferhook", "executor"]
        served = container["args"][2:]
        assert served and set(served) <= set(catalog)
        triggers = scaled_object["spec"]["triggers"]
        assert sorted(t["metadata"]["topic"] for t in triggers) == sorted(
            topic for model in served for topic in topics.all_requests(model))
        assert {t["metadata"]["consumerGroup"] for t in triggers} == {topics.executors_group}
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["INFERHOOK_EXECUTOR_MODE"] == "pooled"  # from zero, the first request shows `loading`
