"""The kustomize base (`k8s/base`), rendered from `tools.k8s.workloads`.

The files are committed so that `kubectl kustomize k8s/overlays/<name>` works without
Python; a test renders them again and fails when they differ (`make k8s` rewrites).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any, get_args

import yaml

from tools.k8s.workloads import (
    WORKLOADS,
    Workload,
    callers_of,
    config_of,
    secrets_of,
)
from tools.k8s.workloads import prefix as env_prefix

NAMESPACE = "grassroots"
IMAGE = "grassroots"
PART_OF = {"app.kubernetes.io/part-of": "grassroots"}
RUN_AS = 10001  # the image's user (Dockerfile)
# Backing services every overlay provides as Services of these names.
BACKING = {"postgres": 5432, "redis": 6379, "mqtt": 1883}
HEADER = "# Rendered by `make k8s` from services/kit/components.py and the settings classes.\n"


def labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, **PART_OF}


def _selector(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name}


def _probes(workload: Workload) -> dict[str, Any]:
    port_name, port = workload.serving_port
    if port_name == "grpc":
        live: dict[str, Any] = {"grpc": {"port": port}}
        ready: dict[str, Any] = {"grpc": {"port": port, "service": workload.grpc_service}}
    else:
        live = {"httpGet": {"path": "/healthz", "port": port_name}}
        ready = dict(live)
    return {
        "startupProbe": {**live, "periodSeconds": 2, "failureThreshold": 60},
        "livenessProbe": {**live, "periodSeconds": 10, "failureThreshold": 3},
        "readinessProbe": {**ready, "periodSeconds": 5, "failureThreshold": 2},
    }


def deployment(workload: Workload) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": workload.name,
        "image": IMAGE,
        "args": ["-m", workload.module],
        "ports": [
            {"name": name, "containerPort": port, "protocol": "TCP"}
            for name, port in workload.ports.items()
        ],
        "envFrom": [
            {"configMapRef": {"name": f"{workload.name}-config"}},
            {"secretRef": {"name": f"{workload.name}-secrets"}},
        ],
        **_probes(workload),
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": workload.memory_limit},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "data", "mountPath": "/data"},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 (an emptyDir of its own)
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": workload.name, "labels": labels(workload.name)},
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": _selector(workload.name)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {"labels": labels(workload.name)},
                "spec": {
                    "serviceAccountName": workload.name,
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUN_AS,
                        "runAsGroup": RUN_AS,
                        "fsGroup": RUN_AS,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [
                        {"name": "data", "emptyDir": {}},
                        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                    ],
                },
            },
        },
    }


def service(workload: Workload) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": workload.name, "labels": labels(workload.name)},
        "spec": {
            # gRPC keeps connections open: callers resolve every pod and balance calls
            # themselves (round robin), which a virtual IP would pin to one pod.
            **({"clusterIP": "None"} if "grpc" in workload.ports else {}),
            "selector": _selector(workload.name),
            "ports": [
                {"name": name, "port": port, "targetPort": name, "protocol": "TCP"}
                | ({"appProtocol": "grpc"} if name == "grpc" else {})
                for name, port in workload.ports.items()
            ],
        },
    }


def service_account(workload: Workload) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": workload.name, "labels": labels(workload.name)},
        "automountServiceAccountToken": False,
    }


def config_map(workload: Workload) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{workload.name}-config", "labels": labels(workload.name)},
        "data": _cluster_config(workload),
    }


def _cluster_config(workload: Workload) -> dict[str, str]:
    """`config_of`, plus the bus on the overlay's `redis` Service for every process that
    publishes or consumes facts (pods do not share a local log file)."""
    env = config_of(workload)
    own = workload.settings[0]
    prefix = str(own.model_config.get("env_prefix", ""))
    if "bus_url" in own.model_fields:
        env[prefix + "BUS_URL"] = f"redis://redis:{BACKING['redis']}/0"
    return dict(sorted(env.items()))


def disruption_budget(workload: Workload) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": workload.name, "labels": labels(workload.name)},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _selector(workload.name)}},
    }


def autoscaler(workload: Workload) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": workload.name, "labels": labels(workload.name)},
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": workload.name,
            },
            "minReplicas": 1,
            "maxReplicas": 4,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 70},
                    },
                }
            ],
        },
    }


def network_policy(workload: Workload) -> dict[str, Any]:
    """Who may call the workload, and whom it may call: its peers and backing services."""
    port = workload.serving_port[1]
    ingress: list[dict[str, Any]] = []
    callers = callers_of(workload.name)
    if callers:
        ingress.append(
            {
                "from": [{"podSelector": {"matchLabels": _selector(c)}} for c in callers],
                "ports": [{"port": port, "protocol": "TCP"}],
            }
        )
    if workload.name in ("gateway", "edge"):  # the public entry points, through the Ingress
        ingress.append(
            {
                "from": [{"namespaceSelector": {"matchLabels": {"grassroots/ingress": "true"}}}],
                "ports": [{"port": port, "protocol": "TCP"}],
            }
        )
    ingress.append(  # Prometheus scrapes from a namespace labelled for it
        {
            "from": [{"namespaceSelector": {"matchLabels": {"grassroots/monitoring": "true"}}}],
            "ports": [{"port": workload.ports["metrics"], "protocol": "TCP"}],
        }
    )
    egress: list[dict[str, Any]] = [
        {
            "to": [{"podSelector": {"matchLabels": _selector(peer)}}],
            "ports": [{"port": WORKLOADS[peer].serving_port[1], "protocol": "TCP"}],
        }
        for peer in workload.peers
    ]
    egress.append(
        {  # backing services: in-cluster pods in dev, outside the cluster in a district
            "ports": [{"port": p, "protocol": "TCP"} for p in BACKING.values()],
        }
    )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": workload.name, "labels": labels(workload.name)},
        "spec": {
            "podSelector": {"matchLabels": _selector(workload.name)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }


def shared_policies() -> list[dict[str, Any]]:
    """Deny everything not allowed by a workload's own policy; let every pod resolve names."""
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "default-deny", "labels": PART_OF},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "allow-dns", "labels": PART_OF},
            "spec": {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                                }
                            }
                        ],
                        "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
                    }
                ],
            },
        },
    ]


def namespace() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": NAMESPACE,
            "labels": {
                **PART_OF,
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
                "pod-security.kubernetes.io/warn": "restricted",
                "pod-security.kubernetes.io/audit": "restricted",
            },
        },
    }


def ingress() -> dict[str, Any]:
    """HTTP reaches the gateway's `http` port only; metrics ports are never routed."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "gateway", "labels": labels("gateway")},
        "spec": {
            "rules": [
                {
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {
                                    "service": {"name": "gateway", "port": {"name": "http"}}
                                },
                            }
                        ]
                    }
                }
            ]
        },
    }


def files() -> dict[str, str]:
    """File name under k8s/base -> its text."""
    out: dict[str, str] = {}
    for workload in WORKLOADS.values():
        docs = [
            service_account(workload),
            config_map(workload),
            deployment(workload),
            service(workload),
            disruption_budget(workload),
            autoscaler(workload),
            network_policy(workload),
        ]
        out[f"{workload.name}.yaml"] = _dump(docs)
    out["namespace.yaml"] = _dump([namespace()])
    out["network-policies.yaml"] = _dump(shared_policies())
    out["ingress.yaml"] = _dump([ingress()])
    resources = ["namespace.yaml", "network-policies.yaml", "ingress.yaml"] + [
        f"{name}.yaml" for name in WORKLOADS
    ]
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": NAMESPACE,
        "resources": resources,
        "images": [{"name": IMAGE, "newTag": _version()}],
    }
    out["kustomization.yaml"] = _dump([kustomization])
    return out


def overlay_files() -> dict[str, str]:
    """Files under k8s/ outside the base: the overlays and the secrets component."""
    secrets_component = {
        "apiVersion": "kustomize.config.k8s.io/v1alpha1",
        "kind": "Component",
        # `python -m tools.k8s secrets` writes env/<workload>.env (kept out of git).
        "secretGenerator": [
            {"name": f"{name}-secrets", "envs": [f"env/{name}.env"]} for name in WORKLOADS
        ],
    }
    dev = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": NAMESPACE,
        "resources": ["../../base", "redis.yaml"],
        "components": ["../../components/secrets"],
    }
    district = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": NAMESPACE,
        "resources": ["../../base", "backing-services.yaml"],
        "components": ["../../components/secrets"],
        "patches": [{"path": "district.yaml"}],
    }
    monitoring = {
        "apiVersion": "kustomize.config.k8s.io/v1alpha1",
        "kind": "Component",
        "resources": ["service-monitors.yaml", "alert-rules.yaml"],
        # Grafana's sidecar loads every ConfigMap labelled grafana_dashboard.
        "configMapGenerator": [
            {
                "name": "grassroots-dashboard",
                "files": ["grassroots-golden-signals.json"],
                "options": {"labels": {"grafana_dashboard": "1", **PART_OF}},
            }
        ],
    }
    consul = {
        "apiVersion": "kustomize.config.k8s.io/v1alpha1",
        "kind": "Component",
        "resources": ["network-policy.yaml"],
        "patches": [{"path": "discovery.yaml"}],
    }
    mqtt_bridge = {
        "apiVersion": "kustomize.config.k8s.io/v1alpha1",
        "kind": "Component",
        "patches": [{"path": "twin-bridge.yaml"}],
    }
    return {
        "components/consul/kustomization.yaml": _dump([consul]),
        "components/consul/discovery.yaml": _dump(consul_patches()),
        "components/consul/network-policy.yaml": _dump([consul_policy()]),
        "components/mqtt-bridge/kustomization.yaml": _dump([mqtt_bridge]),
        "components/mqtt-bridge/twin-bridge.yaml": _dump([mqtt_bridge_patch()]),
        "components/monitoring/kustomization.yaml": _dump([monitoring]),
        "components/monitoring/service-monitors.yaml": _dump(
            [service_monitor(w) for w in WORKLOADS.values()]
        ),
        "components/secrets/kustomization.yaml": _dump([secrets_component]),
        "overlays/dev/kustomization.yaml": _dump([dev]),
        "overlays/dev/redis.yaml": _dump(dev_redis()),
        "overlays/district/kustomization.yaml": _dump([district]),
        "overlays/district/backing-services.yaml": _dump(external_services()),
        "overlays/district/district.yaml": _dump(district_patches()),
    }


CONSUL_AGENT_PORT = 8500


def consul_patches() -> list[dict[str, Any]]:
    """Every process finds its peers through Consul (`consul:///<component>`) and the
    components register there; the agent is the node's Consul client (its hostPort)."""
    docs: list[dict[str, Any]] = []
    for workload in WORKLOADS.values():
        data = {"GRASSROOTS_DISCOVERY": "consul"}
        for cls in workload.settings:
            for name in cls.model_fields:
                peer = name.removesuffix("_address")
                if name.endswith("_address") and peer in WORKLOADS:
                    data[env_prefix(cls) + name.upper()] = f"consul:///{peer}"
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"{workload.name}-config"},
                "data": dict(sorted(data.items())),
            }
        )
        docs.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": workload.name},
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [
                                {
                                    "name": workload.name,
                                    "env": [
                                        {
                                            "name": "HOST_IP",
                                            "valueFrom": {
                                                "fieldRef": {"fieldPath": "status.hostIP"}
                                            },
                                        },
                                        {
                                            "name": "GRASSROOTS_CONSUL_URL",
                                            "value": f"http://$(HOST_IP):{CONSUL_AGENT_PORT}",
                                        },
                                    ],
                                }
                            ]
                        }
                    }
                },
            }
        )
    return docs


def consul_policy() -> dict[str, Any]:
    """Processes reach their node's Consul agent; agents (in a namespace labelled
    `grassroots/consul`) run the gRPC health checks."""
    grpc_ports = sorted({w.ports["grpc"] for w in WORKLOADS.values() if "grpc" in w.ports})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "consul-agent", "labels": PART_OF},
        "spec": {
            "podSelector": {"matchLabels": PART_OF},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [{"namespaceSelector": {"matchLabels": {"grassroots/consul": "true"}}}],
                    "ports": [{"port": p, "protocol": "TCP"} for p in grpc_ports],
                }
            ],
            "egress": [{"ports": [{"port": CONSUL_AGENT_PORT, "protocol": "TCP"}]}],
        },
    }


def mqtt_bridge_patch() -> dict[str, Any]:
    """The twin takes device readings from the overlay's `mqtt` broker (one replica at a
    time holds the broker session; the broker's credentials go in the twin's Secret)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "twin-config"},
        "data": {
            "GRASSROOTS_TWIN_MQTT_ENABLED": "true",
            "GRASSROOTS_TWIN_MQTT_HOST": "mqtt",
            "GRASSROOTS_TWIN_MQTT_PORT": str(BACKING["mqtt"]),
        },
    }


def service_monitor(workload: Workload) -> dict[str, Any]:
    """Prometheus Operator scrapes the workload's `metrics` port."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": workload.name, "labels": labels(workload.name)},
        "spec": {
            "selector": {"matchLabels": _selector(workload.name)},
            "endpoints": [{"port": "metrics", "interval": "30s"}],
        },
    }


def dev_redis() -> list[dict[str, Any]]:
    """The bus of the dev overlay: one Redis without persistence, inside the namespace."""
    name = "redis"
    port = BACKING["redis"]
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": labels(name)},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": _selector(name)},
                "template": {
                    "metadata": {"labels": labels(name)},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 999,
                            "runAsGroup": 999,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [
                            {
                                "name": name,
                                "image": "redis:7.4.2-alpine",
                                "args": ["--save", "", "--appendonly", "no"],
                                "ports": [{"name": "redis", "containerPort": port}],
                                "readinessProbe": {"tcpSocket": {"port": "redis"}},
                                "livenessProbe": {"tcpSocket": {"port": "redis"}},
                                "resources": {
                                    "requests": {"cpu": "50m", "memory": "64Mi"},
                                    "limits": {"cpu": "500m", "memory": "256Mi"},
                                },
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "runAsNonRoot": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                            }
                        ],
                        "volumes": [{"name": "data", "emptyDir": {}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "labels": labels(name)},
            "spec": {
                "selector": _selector(name),
                "ports": [{"name": "redis", "port": port, "targetPort": "redis"}],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": name, "labels": labels(name)},
            "spec": {
                "podSelector": {"matchLabels": _selector(name)},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [
                    {
                        "from": [{"podSelector": {"matchLabels": PART_OF}}],
                        "ports": [{"port": port, "protocol": "TCP"}],
                    }
                ],
                "egress": [],
            },
        },
    ]


def external_services() -> list[dict[str, Any]]:
    """PostgreSQL (with PostGIS), Redis and the MQTT broker run outside the cluster: each
    is a DNS name here that district IT points at its servers (edit `externalName`)."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "labels": PART_OF},
            "spec": {"type": "ExternalName", "externalName": f"{name}.grassroots.invalid"},
        }
        for name in BACKING
    ]


def district_patches() -> list[dict[str, Any]]:
    """Two replicas or more on different nodes and zones, production backends."""
    docs: list[dict[str, Any]] = []
    for workload in WORKLOADS.values():
        spread = {"labelSelector": {"matchLabels": _selector(workload.name)}}
        docs.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": workload.name},
                "spec": {
                    "replicas": 2,
                    "template": {
                        "spec": {
                            "affinity": {
                                "podAntiAffinity": {
                                    "preferredDuringSchedulingIgnoredDuringExecution": [
                                        {
                                            "weight": 100,
                                            "podAffinityTerm": {
                                                **spread,
                                                "topologyKey": "kubernetes.io/hostname",
                                            },
                                        }
                                    ]
                                }
                            },
                            "topologySpreadConstraints": [
                                {
                                    **spread,
                                    "maxSkew": 1,
                                    "topologyKey": "topology.kubernetes.io/zone",
                                    "whenUnsatisfiable": "ScheduleAnyway",
                                }
                            ],
                        }
                    },
                },
            }
        )
        docs.append(
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": workload.name},
                "spec": {"minReplicas": 2, "maxReplicas": 6},
            }
        )
        production = production_config(workload)
        if production:
            docs.append(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": f"{workload.name}-config"},
                    "data": production,
                }
            )
    return docs


def production_config(workload: Workload) -> dict[str, str]:
    """Settings that move a workload off its embedded backends: a `backend` setting's
    server choice, and Redis for shared limits and latest state."""
    own = workload.settings[0]
    prefix = str(own.model_config.get("env_prefix", ""))
    env: dict[str, str] = {}
    for name, info in own.model_fields.items():
        if name == "backend":
            choices = [c for c in get_args(info.annotation) if c != info.default]
            if choices:
                env[prefix + "BACKEND"] = str(choices[0])
        elif name == "redis_url":
            env[prefix + "REDIS_URL"] = f"redis://redis:{BACKING['redis']}/0"
    return dict(sorted(env.items()))


def secret_values(workload: Workload, district: bool) -> dict[str, str]:
    """Fresh values for a workload's Secret (and, for a district, its database DSN with
    a fresh password for the role district IT creates)."""
    from devstack.keys import GENERATORS

    # Keys the platform makes itself; a secret it cannot make (an SMS gateway's key) is
    # optional and left for district IT to add to the file.
    values = {name: GENERATORS[name]() for name in secrets_of(workload) if name in GENERATORS}
    own = workload.settings[0]
    if district and "postgres_dsn" in own.model_fields:
        prefix = str(own.model_config.get("env_prefix", ""))
        role = f"grassroots_{workload.name}"
        password = secrets.token_urlsafe(24)
        values[prefix + "POSTGRES_DSN"] = (
            f"postgresql://{role}:{password}@postgres:{BACKING['postgres']}/{role}"
        )
    return values


def _version() -> str:
    import tomllib

    root = Path(__file__).resolve().parents[2]
    return str(tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"])


def _dump(docs: list[dict[str, Any]]) -> str:
    return HEADER + "---\n".join(yaml.safe_dump(d, sort_keys=False, width=100) for d in docs)
