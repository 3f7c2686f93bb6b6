"""Prometheus for real: promtool on the rules, and a Prometheus server scraping all three daemons."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from tests.support.checker import MODEL
from tests.support.process import REPO, free_port, metric_value, wait_for

RULES = REPO / "deploy/prometheus/fsgateway-rules.yml"
DASHBOARD = REPO / "deploy/grafana/fsgateway-dashboard.json"


def promtool(*args: str, cwd=None) -> subprocess.CompletedProcess:
    if shutil.which("promtool") is None:
        pytest.fail("promtool is missing (Debian package prometheus; scripts/setup installs it)")
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_promtool_accepts_the_rules_and_their_unit_tests():
    r = promtool("check", "rules", str(RULES))
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr
    r = promtool("test", "rules", "fsgateway-rules.test.yml", "fsgateway-rules.days.test.yml", cwd=RULES.parent)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr


def test_grafana_dashboard_is_valid_json_with_unique_panels():
    doc = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids)) > 10
    assert all(t["expr"] for p in doc["panels"] for t in p["targets"])


class PromServer:
    def __init__(self, port: int, proc: subprocess.Popen) -> None:
        self.port = port
        self.proc = proc

    def api(self, path: str, **params: str) -> dict:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as r:
            doc = json.loads(r.read())
        assert doc["status"] == "success", doc
        return doc["data"]

    def value(self, query: str) -> float:
        result = self.api("query", query=query)["result"]
        return sum(float(r["value"][1]) for r in result)


def start_prometheus(tmp_path, targets: dict[str, int]) -> PromServer:
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is missing (Debian package prometheus; scripts/setup installs it)")
    port = free_port()
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "rule_files": [str(RULES)],
              "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{p}"]}]}
                                 for job, p in targets.items()]}
    (tmp_path / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    proc = subprocess.Popen(["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=open(tmp_path / "prometheus.log", "ab"), stderr=subprocess.STDOUT)
    server = PromServer(port, proc)

    def ready() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"prometheus exited: {(tmp_path / 'prometheus.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    wait_for(ready, 60, "prometheus to be ready")
    return server


HEALTHY_HOURS = 4  # longer than every `for:` (30 m) and every range in the rules (1 h)
MOUNT_SERIES = ("fsgateway_mount_", "fsgateway_uploads", "fsgateway_fuse_")  # the feed's: mount and checker


def promtool_series(exposition: str, job: str, scraped_at: float) -> list[dict[str, str]]:
    """One daemon's real exposition as promtool input series, held for HEALTHY_HOURS at one sample a minute.

    Counters and gauges keep their scraped value (a healthy daemon with nothing to do). Unix-time gauges
    (`*_timestamp_seconds`) advance with the clock, as a healthy daemon refreshes them: promtool's time
    starts at 0, so each is rebased to the same age (or time left) it had when scraped.
    """
    from prometheus_client.parser import text_string_to_metric_families

    minutes = HEALTHY_HOURS * 60
    out = [{"series": f'up{{job="{job}",instance="i"}}', "values": f"1x{minutes}"}]
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.value != sample.value or sample.value in (float("inf"), float("-inf")):
                continue
            labels = {**sample.labels, "job": job, "instance": "i"}
            selector = ",".join(f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
                                for k, v in sorted(labels.items()))
            if sample.name.endswith("_timestamp_seconds"):
                values = f"{sample.value - scraped_at:.3f}+60x{minutes}"
            else:
                values = f"{sample.value!r}x{minutes}"
            out.append({"series": f"{sample.name}{{{selector}}}", "values": values})
    return out


def assert_no_alert_for_healthy_hours(tmp_path, expositions: dict[str, tuple[str, float]]) -> None:
    """promtool, fed the real expositions of the healthy daemons for HEALTHY_HOURS: no rule may fire."""
    series = [s for job, (text, at) in expositions.items() for s in promtool_series(text, job, at)]
    alerts = re.findall(r"^\s*- alert:\s*(\w+)", RULES.read_text(), re.MULTILINE)
    assert len(alerts) >= 14
    checks = [{"eval_time": f"{minutes}m", "alertname": name, "exp_alerts": []}
              for minutes in (5, 65, HEALTHY_HOURS * 60) for name in alerts]
    test = {"rule_files": [str(RULES)], "evaluation_interval": "1m",
            "tests": [{"name": "three healthy daemons, real expositions", "interval": "1m",
                       "input_series": series, "alert_rule_test": checks}]}
    (tmp_path / "healthy.test.yml").write_text(json.dumps(test))  # JSON is YAML
    r = promtool("test", "rules", str(tmp_path / "healthy.test.yml"))
    assert r.returncode == 0 and "SUCCESS" in r.stdout, (r.stdout + r.stderr)[-4000:]


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(fsgateway_[a-z0-9_]+)", expr))


def test_prometheus_scrapes_all_three_daemons_during_a_firmware_upload(
        pipeline, mounted, same_backup, syncd_factory, tmp_path):
    checker = pipeline.start(mounted.path)
    syncd = syncd_factory(pipeline.bucket, same_backup).start()
    prom = start_prometheus(tmp_path, {"fsgateway-mount": mounted.metrics_port,
                                       "fsgateway-checker": checker.metrics_port,
                                       "fsgateway-syncd": syncd.metrics_port})
    try:
        src = tmp_path / "1.0.0"
        src.mkdir()
        for name, data in pipeline.package("1.0.0", 1, os.urandom(1 << 20)).items():
            (src / name).write_bytes(data)
        (mounted.path / "incoming" / MODEL).mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-r", str(src), str(mounted.path / "incoming" / MODEL)], check=True)
        assert pipeline.verdict("1.0.0")[0] == "accepted"

        def all_up() -> bool:
            targets = prom.api("targets")["activeTargets"]
            return len(targets) == 3 and all(t["health"] == "up" for t in targets)

        wait_for(all_up, 60, "all three targets up")
        # The upload shows in every daemon's metrics, as Prometheus stored them.
        wait_for(lambda: prom.value('fsgateway_uploads_total{job="fsgateway-mount",outcome="ok"}') >= 2, 60,
                 "the mount's uploads in Prometheus")
        wait_for(lambda: prom.value('fsgateway_checker_verdicts_total{outcome="accepted"}') >= 1, 60,
                 "the checker's verdict in Prometheus")
        wait_for(lambda: prom.value('sum(fsgateway_syncd_copies_total{outcome="ok"})') >= 1, 60,
                 "syncd's copies in Prometheus")
        assert prom.value('fsgateway_mount_up{job="fsgateway-mount"}') == 1
        # The rules are loaded and evaluate without errors; a healthy pipeline fires nothing critical.
        groups = {g["name"]: g for g in prom.api("rules")["groups"]}
        assert {"fsgateway-mount", "fsgateway-checker", "fsgateway-syncd"} <= set(groups)
        wait_for(lambda: all(r["health"] == "ok" for g in prom.api("rules")["groups"] for r in g["rules"]), 30,
                 "every rule to evaluate cleanly")
        firing = [a["labels"]["alertname"] for a in prom.api("alerts")["alerts"] if a["state"] == "firing"]
        assert not [a for a in firing if a in ("FsgatewayMountDown", "FsgatewayCheckerDown", "FsgatewaySyncdDown")]

        # Every daemon's exposition follows the naming conventions, and every metric the rules and the
        # dashboard use is one a daemon really exports.
        exported: set[str] = set()
        for text in (mounted.metrics(), checker.metrics(), syncd.metrics()):
            r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
            assert r.returncode == 0, r.stdout + r.stderr
            for line in text.splitlines():
                if line.startswith("# HELP "):
                    name = line.split()[2]
                    exported |= {name, f"{name}_bucket", f"{name}_count", f"{name}_sum"}
        # The checker and syncd export no mount series (they once exported fsgateway_mount_up 0, and the
        # critical FsgatewayMountDown fired for them on every healthy host).
        for text in (checker.metrics(), syncd.metrics()):
            assert [line for line in text.splitlines() if line.startswith(MOUNT_SERIES)] == []
        # Healthy daemons, as they really export, for longer than every `for:`: no alert at all.
        wait_for(lambda: metric_value(syncd.metrics(), "fsgateway_syncd_pending_objects") == 0, 60,
                 "syncd to catch up")
        now = time.time()
        assert_no_alert_for_healthy_hours(tmp_path, {"fsgateway-mount": (mounted.metrics(), now),
                                                     "fsgateway-checker": (checker.metrics(), now),
                                                     "fsgateway-syncd": (syncd.metrics(), now)})
        used = metric_names(RULES.read_text())
        for panel in json.loads(DASHBOARD.read_text())["panels"]:
            for target in panel["targets"]:
                used |= metric_names(target["expr"])
        assert used - exported == set()
    finally:
        prom.proc.terminate()
        prom.proc.wait(timeout=30)
