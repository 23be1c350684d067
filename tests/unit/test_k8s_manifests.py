"""The manifests under k8s/ agree with the code they deploy: stages, registry key, settings, ports.

Each check runs on the base files as written and, when `kubectl` is installed, on what
`kubectl kustomize` renders for base and every overlay (patches and namespaces applied).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from services.asr.settings import AsrSettings
from shared import keys
from shared.settings import ENV_PREFIX, Settings, env_name
from shared.stages import stage_names

yaml = pytest.importorskip(
    "yaml",
    reason="PyYAML is not installed (it comes with ctranslate2 and huggingface_hub); "
    "the manifest checks parse YAML with it",
)

K8S = Path(__file__).resolve().parents[2] / "k8s"
BASE = K8S / "base"
OVERLAYS = sorted(p.parent.name for p in (K8S / "overlays").glob("*/kustomization.yaml"))
# Stands in for values that come from a Secret the overlay does not ship.
_SECRET_PLACEHOLDER = "redis://:secret@redis.invalid:6379/0"

Doc = dict[str, Any]


# --- what Settings.from_env reads --------------------------------------------------------------


def _groups() -> dict[str, Any]:
    """bus, serve and every installed stage's settings, at their defaults."""
    defaults = Settings.from_env(env={})
    return {"bus": defaults.bus, "serve": defaults.serve, **defaults.stages}


def settings_env_names() -> set[str]:
    """Every variable Settings.from_env reads, derived from the dataclass fields.

    bus and serve fields read without a group prefix (STREAMSCRIBE_REDIS_URL), each
    stage's with its name (STREAMSCRIBE_ASR_MODEL); `pipeline` and `worker_name` are
    top-level.
    """
    names = {
        env_name(group, f.name)
        for group, defaults in _groups().items()
        for f in dataclasses.fields(defaults)
    }
    return names | {f"{ENV_PREFIX}PIPELINE", f"{ENV_PREFIX}WORKER_NAME"}


def _probe_value(name: str) -> str:
    """A valid value for `name` that differs from its default."""
    for group, defaults in _groups().items():
        for f in dataclasses.fields(defaults):
            if name == env_name(group, f.name):
                value = getattr(defaults, f.name)
                if isinstance(value, bool):
                    return str(not value).lower()
                if isinstance(value, int | float):
                    return str(value + 1)
                return f"{value}-probe"
    return "ingest" if name.endswith("PIPELINE") else "probe-worker"


def test_from_env_reads_every_name_the_helper_lists() -> None:
    baseline = Settings.from_env(env={})
    for name in sorted(settings_env_names()):
        changed = Settings.from_env(env={name: _probe_value(name)})
        assert changed != baseline, f"Settings.from_env ignores {name}"
    unknown = Settings.from_env(env={f"{ENV_PREFIX}NO_SUCH_SETTING": "1"})
    assert unknown == baseline


# --- loading -----------------------------------------------------------------------------------


def _load(path: Path) -> list[Doc]:
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def _base_files() -> list[Doc]:
    kustomization = _load(BASE / "kustomization.yaml")[0]
    return [doc for name in kustomization["resources"] for doc in _load(BASE / name)]


@functools.cache
def _rendered(directory: str) -> tuple[Doc, ...]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: rendered overlays are not checked")
    out = subprocess.run(
        [kubectl, "kustomize", str(K8S / directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, f"kubectl kustomize {directory} failed:\n{out.stderr}"
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d is not None)


SOURCES = ["base (files)", "base", *(f"overlays/{name}" for name in OVERLAYS)]


@pytest.fixture(params=SOURCES)
def manifests(request: pytest.FixtureRequest) -> list[Doc]:
    if request.param == "base (files)":
        return _base_files()
    return list(_rendered(request.param))


def _of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d.get("kind") == kind]


def _named(docs: list[Doc], kind: str, name: str) -> Doc | None:
    return next((d for d in _of_kind(docs, kind) if d["metadata"]["name"] == name), None)


# --- one stage's Deployment, resolved ----------------------------------------------------------


@dataclasses.dataclass
class StageDeployment:
    stage: str
    deployment: Doc
    container: Doc
    env: dict[str, str]  # envFrom ConfigMaps first, then env (which wins, as in the kubelet)
    settings: Settings

    @property
    def pod(self) -> Doc:
        spec: Doc = self.deployment["spec"]["template"]["spec"]
        return spec


def _secret_value(docs: list[Doc], name: str, key: str) -> str:
    secret = _named(docs, "Secret", name)
    if secret is None:
        return _SECRET_PLACEHOLDER  # supplied out of band (production, overlays/gpu)
    if key in secret.get("stringData", {}):
        return str(secret["stringData"][key])
    assert key in secret.get("data", {}), f"Secret {name} has no key {key!r}"
    return base64.b64decode(secret["data"][key]).decode()


def _container_env(docs: list[Doc], container: Doc) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        config_map = _named(docs, "ConfigMap", name)
        assert config_map is not None, f"envFrom names ConfigMap {name!r}, which is not deployed"
        env.update({k: str(v) for k, v in config_map["data"].items()})
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = _secret_value(docs, ref["name"], ref["key"])
    return env


def _is_gateway(deployment: Doc) -> bool:
    """The gateway Deployment runs `streamscribe gateway`, not a stage (checked below)."""
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return bool(containers[0].get("args") == ["gateway"])


def _stage_deployments(docs: list[Doc]) -> Iterator[StageDeployment]:
    for deployment in _of_kind(docs, "Deployment"):
        if _is_gateway(deployment):
            continue
        containers = deployment["spec"]["template"]["spec"]["containers"]
        assert len(containers) == 1, deployment["metadata"]["name"]
        container = containers[0]
        args = container.get("args", [])
        assert container.get("command") in (None, ["streamscribe"])
        assert len(args) == 2 and args[0] == "worker", f"not a `streamscribe worker` pod: {args}"
        env = _container_env(docs, container)
        yield StageDeployment(args[1], deployment, container, env, Settings.from_env(env=env))


def _stages(docs: list[Doc]) -> list[StageDeployment]:
    stages = list(_stage_deployments(docs))
    assert stages, "no stage Deployments found"
    return stages


# --- checks ------------------------------------------------------------------------------------


def test_every_yaml_file_parses_and_base_is_namespace_agnostic() -> None:
    files = sorted(K8S.rglob("*.yaml"))
    assert files
    for path in files:
        docs = _load(path)
        assert docs, f"{path} is empty"
        if path.name == "kustomization.yaml":
            entries = docs[0].get("resources", []) + [
                patch["path"] for patch in docs[0].get("patches", []) if "path" in patch
            ]
            for entry in entries:
                assert (path.parent / entry).exists(), f"{path}: no {entry}"
            continue
        for doc in docs:
            assert {"apiVersion", "kind", "metadata"} <= doc.keys(), path
            if path.parent == BASE:
                assert "namespace" not in doc["metadata"], f"{path}: base names a namespace"
    listed = set(_load(BASE / "kustomization.yaml")[0]["resources"])
    unlisted = {p.name for p in BASE.glob("*.yaml")} - listed - {"kustomization.yaml"}
    assert not unlisted, f"base files kustomize would never apply: {unlisted}"


def test_deployments_run_known_stages(manifests: list[Doc]) -> None:
    stages = _stages(manifests)
    names = [s.stage for s in stages]
    assert len(names) == len(set(names)), f"two Deployments run one stage: {names}"
    for s in stages:
        assert s.stage in stage_names(), f"`streamscribe worker {s.stage}` does not exist"
        labels = s.deployment["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == s.stage
        # KEDA owns the replica count; a value here resets it on every apply.
        assert "replicas" not in s.deployment["spec"]
        assert s.pod["terminationGracePeriodSeconds"] >= 30
    for s in stages:
        pipeline = s.settings.pipeline
        assert set(pipeline) <= set(names), (
            f"STREAMSCRIBE_PIPELINE {pipeline} names stages with no Deployment: `done` would "
            "never be published"
        )


def test_every_streamscribe_variable_is_a_setting(manifests: list[Doc]) -> None:
    readable = settings_env_names()
    config_maps = [
        c
        for c in _of_kind(manifests, "ConfigMap")
        if c["metadata"]["name"].startswith("streamscribe")
    ]
    assert config_maps
    for config_map in config_maps:
        data = {k: str(v) for k, v in config_map["data"].items()}
        assert set(data) <= readable, f"not read by Settings.from_env: {set(data) - readable}"
        Settings.from_env(env=data)
    for s in _stages(manifests):
        named = {k for k in s.env if k.startswith(ENV_PREFIX)}
        assert named <= readable, f"{s.stage}: not read by Settings.from_env: {named - readable}"
        assert s.settings.bus.redis_url == s.env["STREAMSCRIBE_REDIS_URL"]
        # A live owner renews several times per min-idle, or its sessions get taken over.
        assert s.settings.bus.claim_min_idle_ms >= 3 * s.settings.bus.renew_interval_ms
        # Every blocking read must return before the socket times out.
        assert s.settings.bus.block_ms < s.settings.bus.socket_timeout_s * 1000


def _port_number(container: Doc, port: int | str) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p.get("name") == port)


def test_probes_and_scraping_use_the_health_port(manifests: list[Doc]) -> None:
    for s in _stages(manifests):
        health_port = s.settings.serve.health_port
        assert health_port, f"{s.stage}: STREAMSCRIBE_HEALTH_PORT unset, no /livez to probe"
        paths = {"livenessProbe": "/livez", "readinessProbe": "/readyz", "startupProbe": "/readyz"}
        for probe_name, path in paths.items():
            probe = s.container.get(probe_name)
            if probe is None and probe_name == "startupProbe":
                continue
            assert probe is not None, f"{s.stage}: no {probe_name}"
            assert probe["httpGet"]["path"] == path, f"{s.stage} {probe_name}"
            assert _port_number(s.container, probe["httpGet"]["port"]) == health_port
        annotations = s.deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        assert int(annotations["prometheus.io/port"]) == health_port


# KEDA's Redis Streams scalers and the parameter naming where Redis is.
_ADDRESS_PARAMETER = {"redis-streams": "address", "redis-cluster-streams": "addresses"}


def test_each_stage_scales_on_its_consumer_group(manifests: list[Doc]) -> None:
    scaled = _of_kind(manifests, "ScaledObject")
    auths = {a["metadata"]["name"]: a for a in _of_kind(manifests, "TriggerAuthentication")}
    stages = {s.deployment["metadata"]["name"]: s for s in _stages(manifests)}
    targets = [so["spec"]["scaleTargetRef"]["name"] for so in scaled]
    assert sorted(targets) == sorted(stages), "one ScaledObject per stage Deployment"
    for so in scaled:
        s = stages[so["spec"]["scaleTargetRef"]["name"]]
        spec = so["spec"]
        # Pending entries exist only once a worker read them: from zero nothing scales up.
        assert spec["minReplicaCount"] >= 1
        assert spec["maxReplicaCount"] >= spec["minReplicaCount"]
        (trigger,) = spec["triggers"]
        meta = trigger["metadata"]
        assert trigger["type"] in _ADDRESS_PARAMETER, trigger["type"]
        assert meta["stream"] == keys.registry()
        assert meta["consumerGroup"] == s.stage
        target = int(meta["pendingEntriesCount"])
        # Replicas that may hold no more than the target never push pending above
        # target x replicas, so KEDA would never add one.
        assert s.settings.bus.max_sessions_per_worker > target >= 1, s.stage
        db = urlsplit(s.settings.bus.redis_url).path.strip("/") or "0"
        if trigger["type"] == "redis-streams":
            assert meta.get("databaseIndex", "0") == db, "KEDA would read another database"
        else:
            assert "databaseIndex" not in meta, "a cluster has only database 0"
        auth = auths[trigger["authenticationRef"]["name"]]
        params = {ref["parameter"] for ref in auth["spec"]["secretTargetRef"]}
        assert {_ADDRESS_PARAMETER[trigger["type"]], "password"} <= params


def test_each_stage_has_a_disruption_budget_that_allows_drains(manifests: list[Doc]) -> None:
    budgets = _of_kind(manifests, "PodDisruptionBudget")
    for s in _stages(manifests):
        labels = s.deployment["spec"]["template"]["metadata"]["labels"]
        matching = [
            b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(matching) == 1, f"{s.stage}: {len(matching)} PodDisruptionBudgets select it"
        # minAvailable 1 with one replica would block every node drain.
        assert "minAvailable" not in matching[0]["spec"]
        assert matching[0]["spec"]["maxUnavailable"] >= 1


def _dev() -> list[Doc]:
    if "dev" not in OVERLAYS:
        pytest.skip("no dev overlay")
    return list(_rendered("overlays/dev"))


def test_dev_overlay_ships_redis_with_aof_and_every_secret_key() -> None:
    docs = _dev()
    redis = _named(docs, "StatefulSet", "redis")
    assert redis is not None
    args = redis["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    secrets = {d["metadata"]["name"]: d for d in _of_kind(docs, "Secret")}
    wanted = {
        (ref["name"], ref["key"])
        for auth in _of_kind(docs, "TriggerAuthentication")
        for ref in auth["spec"]["secretTargetRef"]
    }
    for s in _stages(docs):
        for item in s.container.get("env", []):
            if "valueFrom" in item:
                ref = item["valueFrom"]["secretKeyRef"]
                wanted.add((ref["name"], ref["key"]))
    for name, key in wanted:
        assert key in secrets[name]["data"], f"Secret {name} lacks {key}"
    namespace = redis["metadata"]["namespace"]
    # KEDA's operator resolves the address from its own namespace: a short name fails there.
    address = _secret_value(docs, "streamscribe-redis", "address")
    assert address.startswith(f"redis.{namespace}.svc"), address
    url = urlsplit(_secret_value(docs, "streamscribe-redis", "url"))
    assert url.hostname == "redis"
    assert url.password == _secret_value(docs, "streamscribe-redis", "password")


def test_gpu_overlay_puts_only_asr_on_a_gpu() -> None:
    if "gpu" not in OVERLAYS:
        pytest.skip("no gpu overlay")
    stages = {s.stage: s for s in _stages(list(_rendered("overlays/gpu")))}
    asr = stages["asr"]
    resources = asr.container["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == "1"
    assert asr.settings.stage("asr", AsrSettings).device == "cuda"
    assert asr.pod["nodeSelector"]
    tolerations = {t["key"] for t in asr.pod["tolerations"]}
    assert {"nvidia.com/gpu", "node.kubernetes.io/unreachable"} <= tolerations
    for stage, s in stages.items():
        if stage != "asr":
            assert "nvidia.com/gpu" not in str(s.container["resources"]), stage
            assert s.settings.stage("asr", AsrSettings).device != "cuda"


def test_cluster_overlay_scales_every_stage_with_the_cluster_scaler() -> None:
    if "redis-cluster" not in OVERLAYS:
        pytest.skip("no redis-cluster overlay")
    docs = list(_rendered("overlays/redis-cluster"))
    types = {so["spec"]["scaleTargetRef"]["name"]: so["spec"]["triggers"][0]["type"]
             for so in _of_kind(docs, "ScaledObject")}  # fmt: skip
    assert set(types) == {s.deployment["metadata"]["name"] for s in _stages(docs)}
    assert set(types.values()) == {"redis-cluster-streams"}
    (auth,) = _of_kind(docs, "TriggerAuthentication")
    refs = {ref["parameter"]: ref["key"] for ref in auth["spec"]["secretTargetRef"]}
    assert refs == {"addresses": "addresses", "password": "password"}


def test_gateway_is_served_probed_and_scaled(manifests: list[Doc]) -> None:
    from streamscribe.gateway.settings import GATEWAY_ENV_PREFIX, GatewaySettings

    (gateway,) = [d for d in _of_kind(manifests, "Deployment") if _is_gateway(d)]
    container = gateway["spec"]["template"]["spec"]["containers"][0]
    env = _container_env(manifests, container)
    gateway_env = {k: v for k, v in env.items() if k.startswith(GATEWAY_ENV_PREFIX)}
    settings = GatewaySettings.from_env(gateway_env)
    readable = {GATEWAY_ENV_PREFIX + name.upper() for name in GatewaySettings.__dataclass_fields__}
    assert set(gateway_env) <= readable, set(gateway_env) - readable
    assert settings.host == "0.0.0.0"
    assert Settings.from_env(env=env).bus.redis_url == env["STREAMSCRIBE_REDIS_URL"]
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/livez")):
        assert container[probe]["httpGet"]["path"] == path
        assert _port_number(container, container[probe]["httpGet"]["port"]) == settings.port
    labels = gateway["spec"]["template"]["metadata"]["labels"]
    (service,) = [s for s in _of_kind(manifests, "Service")
                  if s["metadata"]["name"] == gateway["metadata"]["name"]]  # fmt: skip
    assert service["spec"]["selector"].items() <= labels.items()
    assert _port_number(container, service["spec"]["ports"][0]["targetPort"]) == settings.port
    assert "replicas" not in gateway["spec"]
    (hpa,) = _of_kind(manifests, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == gateway["metadata"]["name"]
