"""The Kubernetes manifests: current, valid for the API server, and within policy.

Both overlays are rendered with `kubectl kustomize` (offline) into objects that
`kubernetes-validate` checks against the Kubernetes API schemas; then each object is
held to the platform's rules: probes, limits, a non-root read-only container, named
ports, pinned images, every required setting present, network policies exactly as wide
as the calls the code makes.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tools.k8s import __main__ as k8s_cli
from tools.k8s import render
from tools.k8s.workloads import WORKLOADS, callers_of, known_variables, required_of

OVERLAYS = ("dev", "district", "district-options")
# The district overlay with every optional component but monitoring (whose objects are
# Prometheus Operator kinds, checked in test_monitoring.py).
OPTIONS = ("consul", "mqtt-bridge")
# The oldest Kubernetes release the manifests promise to work on, and the newest.
KUBERNETES_VERSIONS = ("1.29.0", "1.35.0")


def test_the_committed_manifests_are_what_the_component_table_renders():
    assert k8s_cli.stale() == [], "run `make k8s`"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is not installed: it renders the overlays (kubectl kustomize)"
    root = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(k8s_cli.ROOT, root, ignore=shutil.ignore_patterns("env"))
    k8s_cli.write_secrets(root, district=True, force=True)
    options = root / "overlays" / "district-options"
    options.mkdir()
    (options / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": ["../district"],
                "components": [f"../../components/{name}" for name in OPTIONS],
            }
        )
    )
    out = {}
    for overlay in OVERLAYS:
        done = subprocess.run(
            [kubectl, "kustomize", str(root / "overlays" / overlay)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        out[overlay] = [d for d in yaml.safe_load_all(done.stdout) if d]
    return out


def _of_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_validates_against_the_api_schemas(rendered, overlay, version):
    failures = []
    for obj in rendered[overlay]:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {error.message}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_has_a_deployment_service_account_and_budget(rendered, overlay):
    objects = rendered[overlay]
    for kind in ("Deployment", "Service", "ServiceAccount", "PodDisruptionBudget", "ConfigMap"):
        names = set(_of_kind(objects, kind))
        wanted = {f"{w}-config" for w in WORKLOADS} if kind == "ConfigMap" else set(WORKLOADS)
        assert wanted <= names, f"{kind} missing for {wanted - names}"
    for account in _of_kind(objects, "ServiceAccount").values():
        assert account["automountServiceAccountToken"] is False


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_probed_limited_and_unprivileged(rendered, overlay):
    for name, deployment in _of_kind(rendered[overlay], "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in pod["containers"]:
            where = f"{name}/{container['name']}"
            for probe in ("livenessProbe", "readinessProbe"):
                assert probe in container, f"{where} has no {probe}"
            if name in WORKLOADS:
                assert "startupProbe" in container, where
                port_name, _ = WORKLOADS[name].serving_port
                kind = "grpc" if port_name == "grpc" else "httpGet"
                assert kind in container["readinessProbe"], f"{where} should probe {kind}"
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), where
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), where
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            for port in container.get("ports", []):
                assert port.get("name"), f"{where} has an unnamed port {port}"
            image = container["image"]
            tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
            assert tag and tag != "latest", f"{where} runs an unpinned image {image}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_ports_are_named_for_what_they_carry(rendered, overlay):
    for name, service in _of_kind(rendered[overlay], "Service").items():
        if name not in WORKLOADS:
            continue
        names = {p["name"] for p in service["spec"]["ports"]}
        assert names <= {"grpc", "http", "metrics"} and "metrics" in names, (name, names)
        assert len(names & {"grpc", "http"}) == 1, name
        if "grpc" in names:  # callers balance over the pods (kit.client's round robin)
            assert service["spec"].get("clusterIP") == "None", f"{name} should be headless"


def test_the_namespace_enforces_the_restricted_pod_security_standard(rendered):
    for overlay in OVERLAYS:
        (namespace,) = _of_kind(rendered[overlay], "Namespace").values()
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_ingress_routes_only_the_gateways_http_port(rendered):
    for overlay in OVERLAYS:
        for ingress in _of_kind(rendered[overlay], "Ingress").values():
            for rule in ingress["spec"]["rules"]:
                for path in rule["http"]["paths"]:
                    assert path["backend"]["service"] == {
                        "name": "gateway",
                        "port": {"name": "http"},
                    }


def _environment(objects: list[dict[str, Any]], deployment: dict[str, Any]) -> dict[str, str]:
    """Variable -> where it comes from, for the first container of a Deployment."""
    maps = _of_kind(objects, "ConfigMap")
    secrets = _of_kind(objects, "Secret")
    env: dict[str, str] = {}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env.update({item["name"]: "env" for item in container.get("env", [])})
    for source in container["envFrom"]:
        if "configMapRef" in source:
            ref = source["configMapRef"]["name"]
            env.update(dict.fromkeys(maps[ref]["data"], f"configmap {ref}"))
        else:
            ref = source["secretRef"]["name"]
            env.update(dict.fromkeys(secrets[ref]["data"], f"secret {ref}"))
    return env


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_required_setting_is_set_and_every_set_one_is_read(rendered, overlay):
    objects = rendered[overlay]
    deployments = _of_kind(objects, "Deployment")
    for workload in WORKLOADS.values():
        env = _environment(objects, deployments[workload.name])
        missing = set(required_of(workload)) - set(env)
        assert not missing, f"{workload.name} would refuse to start without {missing}"
        unknown = {k for k in env if k.startswith("GRASSROOTS_")} - known_variables(workload)
        assert not unknown, f"{workload.name} is given settings it never reads: {unknown}"
        for name, source in env.items():
            if "KEYS" in name or name.endswith(("_KEY", "_DSN")):
                assert source.startswith("secret"), f"{workload.name}: {name} in a {source}"


def test_the_district_runs_every_workload_twice_on_production_backends(rendered):
    objects = rendered["district"]
    for name, deployment in _of_kind(objects, "Deployment").items():
        if name in WORKLOADS:
            assert deployment["spec"]["replicas"] >= 2, name
            assert deployment["spec"]["template"]["spec"]["topologySpreadConstraints"], name
    for name, autoscaler in _of_kind(objects, "HorizontalPodAutoscaler").items():
        assert autoscaler["spec"]["minReplicas"] >= 2, name
    data = {k: v for m in _of_kind(objects, "ConfigMap").values() for k, v in m["data"].items()}
    assert data["GRASSROOTS_EVENTS_BACKEND"] == "postgres"
    assert data["GRASSROOTS_MAP_BACKEND"] == "postgis"
    assert data["GRASSROOTS_GATEWAY_REDIS_URL"].startswith("redis://redis:")
    assert {"postgres", "redis", "mqtt"} <= {
        n
        for n, s in _of_kind(objects, "Service").items()
        if s["spec"].get("type") == "ExternalName"
    }


def test_with_consul_every_process_registers_and_finds_its_peers_there(rendered):
    objects = rendered["district-options"]
    deployments = _of_kind(objects, "Deployment")
    data = {k: v for m in _of_kind(objects, "ConfigMap").values() for k, v in m["data"].items()}
    assert data["GRASSROOTS_EVENTS_MAP_ADDRESS"] == "consul:///map"
    assert data["GRASSROOTS_GATEWAY_EVENTS_ADDRESS"] == "consul:///events"
    addresses = {k: v for k, v in data.items() if k.endswith("_ADDRESS")}
    assert addresses and all(v.startswith("consul:///") for v in addresses.values())
    for name in WORKLOADS:
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        env = {item["name"]: item for item in container["env"]}
        assert env["HOST_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
        assert env["GRASSROOTS_CONSUL_URL"]["value"] == "http://$(HOST_IP):8500"
        assert container["envFrom"], "the component adds to the container, not replaces it"
        config = _of_kind(objects, "ConfigMap")[f"{name}-config"]["data"]
        assert config["GRASSROOTS_DISCOVERY"] == "consul"
    policy = _of_kind(objects, "NetworkPolicy")["consul-agent"]["spec"]
    assert policy["egress"] == [{"ports": [{"port": 8500, "protocol": "TCP"}]}]
    assert data["GRASSROOTS_TWIN_MQTT_ENABLED"] == "true"
    assert data["GRASSROOTS_TWIN_MQTT_HOST"] == "mqtt"


def _selected(peers: list[dict[str, Any]]) -> set[str]:
    names = set()
    for peer in peers:
        assert "podSelector" in peer or "namespaceSelector" in peer, peer
        if "podSelector" in peer:
            labels = peer["podSelector"].get("matchLabels", {})
            assert labels, f"a rule allows every pod: {peer}"
            names.add(labels.get("app.kubernetes.io/name", "*"))
    return names


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_allow_exactly_the_calls_the_code_makes(rendered, overlay):
    policies = _of_kind(rendered[overlay], "NetworkPolicy")
    assert policies["default-deny"]["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
    }
    allowed_in: dict[str, set[str]] = defaultdict(set)
    allowed_out: dict[str, set[str]] = defaultdict(set)
    for workload in WORKLOADS.values():
        policy = policies.get(workload.name)
        assert policy, f"{workload.name} has no NetworkPolicy"
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        for rule in policy["spec"]["ingress"]:
            allowed_in[workload.name] |= _selected(rule["from"])
        for rule in policy["spec"]["egress"]:
            allowed_out[workload.name] |= _selected(rule.get("to", []))
            if "to" not in rule:  # backing services, by port only
                assert {p["port"] for p in rule["ports"]} <= set(render.BACKING.values())
    for workload in WORKLOADS.values():
        assert allowed_in[workload.name] == set(callers_of(workload.name)), workload.name
        assert allowed_out[workload.name] == set(workload.peers), workload.name


def test_the_call_graph_is_what_the_services_are_wired_with():
    """The graph comes from the address settings: events calls map, the gateway and the
    edge call every component, and nobody calls the gateway over the cluster network."""
    assert "map" in WORKLOADS["events"].peers
    assert set(WORKLOADS["gateway"].peers) == set(WORKLOADS) - {"gateway", "edge"}
    assert set(WORKLOADS["edge"].peers) == set(WORKLOADS["gateway"].peers)
    assert callers_of("gateway") == () and callers_of("edge") == ()


def test_peers_are_reached_by_dns_so_every_replica_gets_calls(rendered):
    data = {
        k: v
        for m in _of_kind(rendered["district"], "ConfigMap").values()
        for k, v in m["data"].items()
    }
    assert data["GRASSROOTS_EVENTS_MAP_ADDRESS"] == "dns:///map:50051"
    assert data["GRASSROOTS_GATEWAY_EVENTS_ADDRESS"] == "dns:///events:50052"


def test_secrets_are_written_owner_only_and_never_replaced_silently(tmp_path):
    folder = k8s_cli.write_secrets(tmp_path, district=False, force=False)
    first = (folder / "events.env").read_text()
    assert "GRASSROOTS_EVENTS_SEAL_KEYS=" in first and "GRASSROOTS_PRINCIPAL_KEYS=" in first
    assert (folder / "events.env").stat().st_mode & 0o777 == 0o600
    k8s_cli.write_secrets(tmp_path, district=False, force=False)
    assert (folder / "events.env").read_text() == first
    # --district without --force keeps the files, so it says which lack their DSN.
    k8s_cli.write_secrets(tmp_path, district=True, force=False)
    assert "events.env" in k8s_cli.lacking_dsns(folder)
    assert "gateway.env" not in k8s_cli.lacking_dsns(folder)
    k8s_cli.write_secrets(tmp_path, district=True, force=True)
    assert (
        "GRASSROOTS_EVENTS_POSTGRES_DSN=postgresql://grassroots_events:"
        in (folder / "events.env").read_text()
    )
    assert k8s_cli.lacking_dsns(folder) == []


def test_secrets_stay_out_of_git_and_out_of_the_image():
    root = Path(__file__).resolve().parents[3]
    assert "k8s/components/secrets/env/" in (root / ".gitignore").read_text().splitlines()
    assert "k8s" in (root / ".dockerignore").read_text().splitlines()
