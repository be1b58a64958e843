#!/usr/bin/env python3
"""A short user-journey run against a local gateway, for the test suite.

Starts the gateway binary on a free loopback port (fresh data directory,
per-IP limits off, cheap hashing), creates an admin and an introspect key,
runs the goose journey for a few seconds and exits with its status.

Usage: load-tests/smoke.py GATEWAY_BINARY JOURNEY_BINARY [SECONDS]
"""
import os
import subprocess
import sys

from gateway import Gateway


def main():
    gateway, journey = sys.argv[1], sys.argv[2]
    seconds = sys.argv[3] if len(sys.argv) > 3 else "5"
    with Gateway(gateway, {"PORTCULLIS_RATE_LIMIT": "off"}) as server:
        admin = server.post("/api/v1/auth/register",
                            {"email": "admin@load.test", "password": "admin password 1", "name": "Admin"})
        key = server.post("/api/v1/auth/api-keys", {"name": "journey", "scopes": ["introspect"]}, admin["token"])
        run = subprocess.run([journey, "--host", server.base, "--users", "4", "--increase-rate", "4",
                              "--run-time", f"{seconds}s", "--quiet", "--no-print-metrics"],
                             env=dict(os.environ, INTROSPECT_KEY=key["api_key"]), timeout=120)
    sys.exit(run.returncode)


if __name__ == "__main__":
    main()
