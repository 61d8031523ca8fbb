"""The monitoring component: scrapes every workload's metrics port, and its alerts and
dashboard ask only for metrics the code exports (a renamed metric fails here, not at
3 a.m. when an alert silently never fires)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import prometheus_client
import yaml

import gateway.middleware  # noqa: F401  (registers the gateway's HTTP metrics)
import services.kit.metrics  # noqa: F401  (registers the gRPC metrics)
from tools.k8s import __main__ as k8s_cli
from tools.k8s.workloads import WORKLOADS

MONITORING = k8s_cli.ROOT / "components" / "monitoring"
# Exported by Kubernetes itself (cAdvisor, kube-state-metrics) and Prometheus, not by us.
PLATFORM_METRICS = {"up", "container_cpu_usage_seconds_total", "kube_pod_container_resource_limits"}
PROMQL_WORDS = {
    "sum", "by", "rate", "histogram_quantile", "le", "namespace", "service", "pod", "grpc_service",
    "grpc_code", "route", "status", "container", "resource", "increase", "stream", "group",
    "deadline", "lease", "and",
}  # fmt: skip


def _exported() -> set[str]:
    """Every series name our processes export (histograms as their _bucket/_sum/_count)."""
    names = set()
    for metric in prometheus_client.REGISTRY.collect():
        for sample in metric.samples:
            names.add(sample.name)
        names.add(metric.name)
        if metric.type == "histogram":
            names |= {f"{metric.name}_bucket", f"{metric.name}_sum", f"{metric.name}_count"}
        if metric.type == "counter":
            names.add(f"{metric.name}_total")
    return names


def _metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers before `{`, `[` or `)`."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_labels = re.sub(r"\{[^}]*\}", "{}", without_strings)
    found = set(re.findall(r"\b([a-z_][a-z0-9_]*)\s*[\{\[]", without_labels))
    return found - PROMQL_WORDS


def _expressions() -> list[str]:
    rules = yaml.safe_load((MONITORING / "alert-rules.yaml").read_text())
    exprs = [r["expr"] for g in rules["spec"]["groups"] for r in g["rules"]]
    dashboard = json.loads((MONITORING / "grassroots-golden-signals.json").read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    return exprs


def test_alerts_and_dashboard_ask_only_for_exported_metrics():
    exported = _exported()
    for expr in _expressions():
        names = _metric_names(expr)
        assert names, f"no metric found in {expr}"
        unknown = names - exported - PLATFORM_METRICS
        assert not unknown, f"{expr!r} asks for {unknown}, which nothing exports"


def test_the_metric_name_reader_sees_what_it_should():
    expr = 'sum by (x) (rate(grpc_server_handled_total{grpc_code=~"A|B"}[5m])) / up'
    assert _metric_names(expr) == {"grpc_server_handled_total"}


def test_every_workload_is_scraped_on_its_metrics_port():
    monitors = list(yaml.safe_load_all((MONITORING / "service-monitors.yaml").read_text()))
    scraped = {m["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] for m in monitors}
    assert scraped == set(WORKLOADS)
    assert all(m["spec"]["endpoints"] == [{"port": "metrics", "interval": "30s"}] for m in monitors)


def test_the_component_renders_into_an_overlay(tmp_path: Path):
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is not installed: it renders the overlays (kubectl kustomize)"
    root = tmp_path / "k8s"
    shutil.copytree(k8s_cli.ROOT, root, ignore=shutil.ignore_patterns("env"))
    k8s_cli.write_secrets(root, district=True, force=True)
    overlay = root / "overlays" / "district" / "kustomization.yaml"
    config = yaml.safe_load(overlay.read_text())
    config["components"].append("../../components/monitoring")
    overlay.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [kubectl, "kustomize", str(overlay.parent)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(done.stdout) if d]
    assert kinds.count("ServiceMonitor") == len(WORKLOADS)
    assert "PrometheusRule" in kinds
    dashboards = [
        d
        for d in yaml.safe_load_all(done.stdout)
        if d and d["kind"] == "ConfigMap" and d["metadata"]["labels"].get("grafana_dashboard")
    ]
    (dashboard,) = dashboards
    assert json.loads(dashboard["data"]["grassroots-golden-signals.json"])["panels"]
