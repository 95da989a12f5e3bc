"""Every deploy file is checked by a real validator (CI runs these with the rest of the suite).

* YAML style: yamllint over deploy/ (deploy/.yamllint.yaml).
* Kubernetes: every object of the base and of each rendered overlay against the target version's schemas
  (kubernetes-validate, strict: unknown fields are errors); KEDA objects against tests/deploy_schemas/keda-v2.json.
  Overlays are rendered with `kubectl kustomize` where kubectl exists, else that test says why it is skipped.
* Compose: the compose file against the Compose Specification's JSON Schema (check-jsonschema's copy).
* systemd: every unit with `systemd-analyze verify` (paths pointed at this checkout's virtualenv).
* Dockerfile: built where a Docker daemon answers, else skipped with the reason printed.
* Monitoring: alert rules and dashboard name only metrics the code exports, and the README documents them all.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from support import REPO

DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
#: The Kubernetes release the manifests target (oldest supported by the manifests' APIs we rely on).
K8S_VERSION = "1.33.0"
KEDA_SCHEMA = json.loads((REPO / "tests" / "deploy_schemas" / "keda-v2.json").read_text())
BIN = Path(sys.executable).parent


def _documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _k8s_errors(doc: dict[str, Any]) -> list[str]:
    import kubernetes_validate

    if doc.get("apiVersion", "").startswith("keda.sh/"):
        validator = jsonschema.Draft202012Validator({**KEDA_SCHEMA, "$ref": f"#/$defs/{doc['kind']}"})
        return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(doc)]
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        return [f"{'.'.join(map(str, err.path))}: {err.message}"]
    return []


def _check_objects(docs: list[dict[str, Any]]) -> dict[str, list[str]]:
    errors = {f"{d.get('kind')}/{d.get('metadata', {}).get('name')}": _k8s_errors(d) for d in docs}
    return {name: found for name, found in errors.items() if found}


def test_yaml_files_pass_yamllint() -> None:
    done = subprocess.run([str(BIN / "yamllint"), "-s", "-c", str(DEPLOY / ".yamllint.yaml"), str(DEPLOY)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_base_object_is_valid_for_the_target_kubernetes_version() -> None:
    kustomization = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in (K8S / "base").glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk, "every base file is in kustomization.yaml and nothing else"
    docs = [doc for name in sorted(listed) for doc in _documents((K8S / "base" / name).read_text())]
    assert _check_objects(docs) == {}
    kinds = [d["kind"] for d in docs]
    assert kinds.count("ScaledObject") == 5 and kinds.count("Job") == 1 and "PodDisruptionBudget" in kinds


def test_a_broken_manifest_is_caught() -> None:
    [deployment] = [d for d in _documents((K8S / "base" / "beat.yaml").read_text())]
    deployment["spec"]["template"]["spec"]["containers"][0]["resourcez"] = {}
    assert _check_objects([deployment])
    [_, scaled, *_] = _documents((K8S / "base" / "keda.yaml").read_text())
    scaled["spec"]["triggers"][0]["metadata"].pop("listName")
    assert _check_objects([scaled])


def _rendered(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: overlays not rendered (the base is validated above)")
    done = subprocess.run([kubectl, "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return _documents(done.stdout)


@pytest.mark.parametrize("overlay", ["production", "staging"])
def test_each_overlay_renders_to_valid_objects(overlay: str) -> None:
    docs = _rendered(overlay)
    assert _check_objects(docs) == {}
    namespaces = {d["metadata"].get("namespace") for d in docs}
    assert namespaces == {"hexavox" if overlay == "production" else "hexavox-staging"}
    images = {c["image"] for d in docs for c in _containers(d)}
    assert len(images) == 1 and images.pop().startswith("registry.example.com/hexavox/hexavox-worker:")


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {})
    template = spec.get("template", {}).get("spec", {})
    return list(template.get("containers", []))


def test_the_deployment_shape_the_issue_asks_for() -> None:
    docs = [d for name in ("workers.yaml", "beat.yaml", "web.yaml", "api.yaml", "flower.yaml")
            for d in _documents((K8S / "base" / name).read_text()) if d["kind"] == "Deployment"]
    by_name = {d["metadata"]["name"]: d for d in docs}
    beat = by_name["hexavox-beat"]["spec"]
    assert beat["replicas"] == 1 and beat["strategy"] == {"type": "Recreate"}  # exactly one beat
    for name in ("hexavox-web", "hexavox-api"):
        [container] = _containers(by_name[name])
        assert container["readinessProbe"] and container["livenessProbe"]
    for doc in docs:
        for container in _containers(doc):
            assert {"requests", "limits"} <= set(container["resources"]), doc["metadata"]["name"]
            assert {"secretRef": {"name": "hexavox-env"}} in container["envFrom"]  # secrets from a Secret
    workers = [d for d in docs if d["metadata"]["name"].startswith("hexavox-worker-")]
    queues = sorted(q for d in workers for q in _arg(d, "-Q").split(","))
    from worker.queues import ALL_QUEUES

    assert queues == sorted(ALL_QUEUES)  # every queue consumed by exactly one group
    assert all(d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 310 for d in workers)


def _arg(doc: dict[str, Any], flag: str) -> str:
    args = _containers(doc)[0]["args"]
    return str(args[args.index(flag) + 1])


def test_the_compose_file_matches_the_compose_specification() -> None:
    done = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                           str(DEPLOY / "compose.yaml")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        env_file = DEPLOY / "hexavox.env"
        created = not env_file.exists()
        if created:
            shutil.copy(DEPLOY / "env.example", env_file)
        try:
            rendered = subprocess.run([docker, "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "-q"],
                                      capture_output=True, text=True, timeout=60)
        finally:
            if created:
                env_file.unlink()
        assert rendered.returncode == 0, rendered.stderr
    else:
        print("\ndocker compose is not installed: `docker compose config` not run (schema check done)")


def test_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    units = []
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        text = unit.read_text().replace("/opt/hexavox/venv/bin", str(BIN))
        name = unit.name.replace("@.service", "@otp.service")  # a template is verified as an instance
        (tmp_path / name).write_text(text)
        units.append(str(tmp_path / name))
    done = subprocess.run([analyze, "verify", "--man=no", *units], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 0 and not done.stderr.strip(), done.stdout + done.stderr


def test_the_dockerfile_builds_where_a_docker_daemon_answers() -> None:
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "info"], capture_output=True, timeout=30).returncode != 0:
        pytest.skip("no Docker daemon here: the Dockerfile was not built")
    done = subprocess.run([docker, "build", "-q", "-f", str(DEPLOY / "Dockerfile"), "-t", "hexavox-worker:test",
                           str(REPO)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]


def _exported_metrics() -> set[str]:
    from prometheus_client import REGISTRY

    import worker.telemetry.metrics  # noqa: F401 - registers the process metrics
    from worker.telemetry.state import STATE_METRICS

    names = {m.name for m in REGISTRY.collect() if m.name.startswith("hexavox_")}
    return names | set(STATE_METRICS)


def _referenced(text: str) -> set[str]:
    found = set(re.findall(r"\bhexavox_[a-z_]+", text))
    return {re.sub(r"_(bucket|count|sum|total|created)$", "", name) for name in found}


def test_alerts_and_dashboard_use_only_exported_metrics_and_the_readme_documents_every_metric() -> None:
    exported = _exported_metrics()
    alerts = yaml.safe_load((DEPLOY / "monitoring" / "alerts.yaml").read_text())
    exprs = [rule["expr"] for group in alerts["groups"] for rule in group["rules"]]
    dashboard = json.loads((DEPLOY / "monitoring" / "grafana-dashboard.json").read_text())
    targets = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert _referenced("\n".join(exprs)) - exported == set()
    assert _referenced("\n".join(targets)) - exported == set()
    names = {rule["alert"] for group in alerts["groups"] for rule in group["rules"]}
    assert {"HexavoxReconcileBacklogGrowing", "HexavoxBreakerOpen", "HexavoxCallbacksFailing",
            "HexavoxQueuedTooLong"} <= names
    readme = (REPO / "README.md").read_text()
    documented = {name for name in exported if f"`{name}`" in readme or f"`{name}_total`" in readme}
    assert exported - documented == set()
