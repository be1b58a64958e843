#!/usr/bin/env python3
"""The shipped dashboard and alert rules against a real Prometheus.

Usage: prometheus_test.py GATEWAY_BINARY

Starts the gateway and Prometheus (scraping every second) on loopback,
drives a short mixed load, then asks Prometheus for every PromQL expression
in grafana/dashboards/*.json and grafana/alerts.yml. Fails if any expression
is invalid or, for the dashboard, returns no series. Also runs
`promtool check metrics` on the raw /metrics output. Standard library only.
"""

import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "grafana"
PASSWORD = "correct horse battery"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(method, url, body=None, headers=None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read().decode()
            return response.status, (json.loads(text) if text.startswith("{") else text)
    except urllib.error.HTTPError as e:
        text = e.read().decode()
        return e.code, (json.loads(text) if text.startswith("{") else text)


def wait_until(what, check, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"prometheus test: {what} not ready after {seconds} s")


def expressions():
    """(source, expr, must_have_series) for every dashboard target and alert rule."""
    found = []
    for path in sorted((GRAFANA / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                found.append((f"{path.name}: {panel['title']}", target["expr"], True))
    # alerts.yml: every `expr:` (one line, or a `|` block indented below it).
    lines = (GRAFANA / "alerts.yml").read_text().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip().startswith("expr:"):
            indent = len(line) - len(line.lstrip())
            value = line.split("expr:", 1)[1].strip()
            if value in ("|", ">", "|-", ">-"):
                block = []
                i += 1
                while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                    block.append(lines[i].strip())
                    i += 1
                value = " ".join(block)
                i -= 1
            found.append(("alerts.yml", value, False))
        i += 1
    return found


def fresh_metrics_missing(text):
    """Every counter and gauge the dashboard and alerts use that a fresh
    gateway's /metrics lacks (histograms come with their first observation,
    so `_bucket`, `_sum` and `_count` references are left out)."""
    exported = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            exported.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    used = set()
    for _, expr, _ in expressions():
        used.update(re.findall(r"\bportcullis_[a-z_]+", expr))
    used.update(["portcullis_hash_rejected_total", "portcullis_ratelimit_rejected_total",
                 "portcullis_store_errors_total", "portcullis_mail_messages_total"])
    wanted = {name for name in used if not name.endswith(("_bucket", "_sum", "_count"))}
    missing = sorted(wanted - exported)
    # Known label values too: every rate-limited route and mail outcome, the default project's logins.
    for series in ['portcullis_ratelimit_rejected_total{route="login"}', 'portcullis_mail_messages_total{outcome="dropped"}',
                   'portcullis_logins_total{outcome="failure",project="default"}']:
        name, labels = series.split("{")
        pairs = labels.rstrip("}").split(",")
        if not any(line.startswith(name + "{") and all(p in line for p in pairs) for line in text.splitlines()):
            missing.append(series)
    return missing


def drive_load(base):
    """Sign-ups, logins right and wrong, refreshes, token checks, codes, errors."""
    status, admin = call("POST", f"{base}/api/v1/auth/register", {"email": "admin@example.com", "password": PASSWORD, "name": "Admin"})
    assert status == 201, (status, admin)
    token = admin["token"]
    auth = {"Authorization": f"Bearer {token}"}
    status, key = call("POST", f"{base}/api/v1/auth/api-keys", {"name": "edge", "scopes": ["introspect"]}, auth)
    assert status == 201, (status, key)
    key_auth = {"Authorization": f"Bearer {key['api_key']}"}
    refresh = admin["refresh_token"]
    for i in range(20):
        email = f"user{i}@example.com"
        call("POST", f"{base}/api/v1/auth/register", {"email": email, "password": PASSWORD, "name": "U"})
        call("POST", f"{base}/api/v1/auth/login", {"email": email, "password": PASSWORD})
        call("POST", f"{base}/api/v1/auth/login", {"email": email, "password": "not the password"})
        status, rotated = call("POST", f"{base}/api/v1/auth/refresh", {"refresh_token": refresh})
        if status == 200:
            refresh = rotated["refresh_token"]
        for _ in range(5):
            call("GET", f"{base}/api/v1/verify", headers=auth)
            call("POST", f"{base}/api/v1/introspect", {"token": token}, key_auth)
            call("GET", f"{base}/api/v1/auth/me", headers=auth)
        call("POST", f"{base}/api/v1/auth/otp/send", {"email": email, "purpose": "login"})
        call("GET", f"{base}/api/v1/no-such-route")
        call("GET", f"{base}/api/v1/verify", headers={"Authorization": "Bearer not-a-token"})
        time.sleep(0.2)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    gateway_binary = sys.argv[1]
    for tool in ("prometheus", "promtool"):
        if shutil.which(tool) is None:
            sys.exit(f"prometheus test: {tool} not found (scripts/prometheus-test installs it)")
    subprocess.run(["promtool", "check", "config", str(GRAFANA / "prometheus.yml")], check=True)
    subprocess.run(["promtool", "check", "rules", str(GRAFANA / "alerts.yml")], check=True)

    work = pathlib.Path(tempfile.mkdtemp(prefix="portcullis-prometheus-"))
    gateway_port, prometheus_port = free_port(), free_port()
    base = f"http://127.0.0.1:{gateway_port}"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PORTCULLIS_LISTEN": f"127.0.0.1:{gateway_port}",
        "PORTCULLIS_DATA_DIR": str(work / "data"),
        "PORTCULLIS_RATE_LIMIT": "off",
        "PORTCULLIS_HASH_MEMORY_KIB": "1024",
        "PORTCULLIS_HASH_ITERATIONS": "1",
        "PORTCULLIS_LOG_LEVEL": "warn",
    }
    config = work / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - {GRAFANA / 'alerts.yml'}\n"
        "scrape_configs:\n  - job_name: portcullis\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{gateway_port}']\n"
    )
    processes = []
    try:
        gateway_log = open(work / "gateway.log", "w")
        processes.append(subprocess.Popen([gateway_binary, "serve"], env=env, stdout=gateway_log, stderr=subprocess.STDOUT))
        wait_until("the gateway", lambda: call("GET", f"{base}/healthz")[0] == 200)
        prometheus_log = open(work / "prometheus.log", "w")
        processes.append(subprocess.Popen([
            "prometheus", f"--config.file={config}", f"--storage.tsdb.path={work / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}", "--log.level=warn",
        ], stdout=prometheus_log, stderr=subprocess.STDOUT))
        prometheus = f"http://127.0.0.1:{prometheus_port}"
        wait_until("Prometheus", lambda: call("GET", f"{prometheus}/-/ready")[0] == 200)

        # Every metric the dashboard and alerts use, from the first second (at zero).
        status, fresh = call("GET", f"{base}/metrics")
        missing = fresh_metrics_missing(fresh)
        if missing:
            sys.exit("prometheus test: a fresh gateway does not export " + ", ".join(missing))
        if not fresh_metrics_missing(""):
            sys.exit("prometheus test: an empty /metrics passed the first-second check; it proves nothing")

        drive_load(base)
        status, text = call("GET", f"{base}/metrics")
        checked = subprocess.run(["promtool", "check", "metrics"], input=text, text=True, capture_output=True)
        if checked.returncode != 0:
            sys.exit(f"promtool check metrics failed:\n{checked.stdout}{checked.stderr}")
        # Let at least two scrapes follow the load, then a few more for rates.
        time.sleep(4)

        # The check itself must be able to fail.
        status, answer = call("GET", f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": "sum(rate("}))
        if status == 200 and answer.get("status") == "success":
            sys.exit("prometheus test: a broken expression was accepted; the check proves nothing")
        status, answer = call("GET", f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": "portcullis_no_such_metric"}))
        if answer["data"]["result"]:
            sys.exit("prometheus test: a missing metric returned series; the check proves nothing")

        failures = []
        checked_count = 0
        for source, expr, must_have_series in expressions():
            # Template variables as Grafana's "All" sends them.
            query = expr.replace("$__rate_interval", "1m").replace("$__interval", "15s").replace("$project", ".*")
            status, answer = call("GET", f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": query}))
            checked_count += 1
            if status != 200 or answer.get("status") != "success":
                failures.append(f"{source}: invalid: {expr}\n    {answer}")
            elif must_have_series and not answer["data"]["result"]:
                failures.append(f"{source}: no series: {expr}")
        if failures:
            sys.exit("prometheus test failed:\n" + "\n".join(failures))
        print(f"prometheus test: {checked_count} expressions valid, every dashboard one with series")
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
