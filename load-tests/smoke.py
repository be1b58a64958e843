#!/usr/bin/env python3
"""A short user-journey run against a local gateway, for the test suite.

Starts the gateway binary on a free loopback port (fresh data directory,
per-IP limits off, cheap hashing), creates an admin and an introspect key,
runs the goose journey for a few seconds and exits with its status.

Usage: load-tests/smoke.py GATEWAY_BINARY JOURNEY_BINARY [SECONDS]
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body, token=None):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def main():
    gateway, journey = sys.argv[1], sys.argv[2]
    seconds = sys.argv[3] if len(sys.argv) > 3 else "5"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data:
        # Only our own settings: the gateway refuses unknown PORTCULLIS_* variables.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
        env = dict(inherited, PORTCULLIS_LISTEN=f"127.0.0.1:{port}", PORTCULLIS_DATA_DIR=data,
                   PORTCULLIS_RATE_LIMIT="off", PORTCULLIS_HASH_MEMORY_KIB="1024",
                   PORTCULLIS_HASH_ITERATIONS="1", PORTCULLIS_LOG_LEVEL="warn")
        server = subprocess.Popen([gateway, "serve"], env=env, stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(f"{base}/healthz", timeout=2).read()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        sys.exit("gateway did not start")
                    time.sleep(0.05)
            admin = post(f"{base}/api/v1/auth/register",
                         {"email": "admin@load.test", "password": "admin password 1", "name": "Admin"})
            key = post(f"{base}/api/v1/auth/api-keys", {"name": "journey", "scopes": ["introspect"]}, admin["token"])
            run = subprocess.run([journey, "--host", base, "--users", "4", "--increase-rate", "4",
                                  "--run-time", f"{seconds}s", "--quiet", "--no-print-metrics"],
                                 env=dict(os.environ, INTROSPECT_KEY=key["api_key"]), timeout=120)
            sys.exit(run.returncode)
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
