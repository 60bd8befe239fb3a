"""deploy/grafana and deploy/prometheus: they parse, and they only name metrics riskgate exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DOC = ROOT / "README.md"  # its Operate section lists the metrics
# Every name riskgate exports (as Prometheus shows it; histograms add _bucket/_sum/_count).
EXPORTED = {
    "riskgate_decisions_total", "riskgate_check_duration_seconds", "riskgate_admin_calls_total",
    "riskgate_admin_call_duration_seconds", "riskgate_breaker_state", "riskgate_account_restrictions",
    "riskgate_book_accounts", "riskgate_book_symbols", "riskgate_book_open_orders", "riskgate_book_reservations",
    "riskgate_reservation_oldest_age_seconds", "riskgate_redis_link_up", "riskgate_serving",
    "riskgate_redis_last_pong_age_seconds", "riskgate_write_behind_queue_depth",
    "riskgate_write_behind_oldest_age_seconds", "riskgate_redis_flush_failures_total",
    "riskgate_redis_version_repairs_total", "riskgate_state_loads_total", "riskgate_state_load_failures_total",
    "riskgate_state_resumes_total", "riskgate_state_changes_replayed_total", "riskgate_process_resident_memory_bytes",
    "riskgate_gc_pause_seconds_total",
    "riskgate_gc_collections_total", "riskgate_monitor_feed_live", "riskgate_monitor_account_events_lag_seconds",
    "riskgate_monitor_actor", "riskgate_monitor_open_episodes", "riskgate_monitor_rules", "riskgate_monitor_symbols",
    "riskgate_monitor_accounts", "riskgate_monitor_alerts_raised_total", "riskgate_monitor_actions_total",
    "riskgate_monitor_evaluation_duration_seconds",
}
NAME = re.compile(r"\briskgate_[a-z_]+")


def _names(text: str) -> set[str]:
    return {re.sub(r"_(bucket|sum|count)$", "", name) for name in NAME.findall(text)}


def test_dashboard_when_parsed_then_grafana_json_whose_queries_name_exported_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "riskgate-dashboard.json").read_text())
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    assert all(p["targets"] and p["gridPos"]["w"] > 0 for p in panels)
    used = set().union(*(_names(e) for e in exprs))
    assert used <= EXPORTED, used - EXPORTED
    for wanted in ("riskgate_check_duration_seconds", "riskgate_decisions_total", "riskgate_breaker_state",
                   "riskgate_account_restrictions", "riskgate_redis_link_up", "riskgate_write_behind_queue_depth",
                   "riskgate_redis_flush_failures_total", "riskgate_book_open_orders",
                   "riskgate_process_resident_memory_bytes", "riskgate_monitor_feed_live",
                   "riskgate_monitor_account_events_lag_seconds", "riskgate_monitor_actor",
                   "riskgate_monitor_alerts_raised_total"):
        assert wanted in used, wanted


def test_alert_rules_when_parsed_then_every_rule_complete_and_on_exported_metrics() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    alerts = {r["alert"]: r for group in rules["groups"] for r in group["rules"]}
    for name in ("RiskgateRedisLinkDown", "RiskgateFailingClosed", "RiskgateCheckLatencyOverBudget",
                 "RiskgateBreakerTripped", "RiskgateMonitorNoActor", "RiskgateMonitorFeedStale"):
        assert name in alerts, name
    for rule in alerts.values():
        assert rule["expr"] and rule["labels"]["severity"] and rule["annotations"]["summary"]
        assert _names(rule["expr"]) <= EXPORTED, rule["expr"]
    assert "0.001" in alerts["RiskgateCheckLatencyOverBudget"]["expr"]
    assert alerts["RiskgateCheckLatencyOverBudget"]["for"] == "5m"


def test_prometheus_config_when_parsed_then_scrapes_gate_and_monitor_with_the_rules() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"riskgate", "riskgate-monitor"}
    assert all(t.endswith(":9464") for c in jobs["riskgate"]["static_configs"] for t in c["targets"])
    assert all(t.endswith(":9465") for c in jobs["riskgate-monitor"]["static_configs"] for t in c["targets"])
    assert config["rule_files"] == ["alerts.yml"]


def test_metrics_doc_when_read_then_lists_every_exported_metric() -> None:
    text = DOC.read_text()
    missing = {name for name in EXPORTED if name not in text}
    assert not missing, missing
