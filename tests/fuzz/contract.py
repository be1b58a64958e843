#!/usr/bin/env python3
"""Fuzzing from the contract: Schemathesis against openapi.yaml and a live gateway.

Usage: contract.py GATEWAY_BINARY SCHEMATHESIS [SECONDS]

Starts the gateway on loopback (embedded store, fresh data directory), signs
up its superadmin and makes an API key with the `introspect` scope, then runs
Schemathesis with both (the document's `bearer` and `apiKey` schemes), the
five conformance checks and a time budget, the stateful phase following the
document's links (register -> login -> refresh, create key -> revoke).
Exits non-zero on any finding.

The fuzzer makes projects with random settings, `response_envelope` among
them, whose `/auth` answers then come in seed 003's `{success, data}`
wrapper (as the seed-003-lnchr tag of the document says). So the document
is fuzzed with every success answer of those trees as "the documented
object, or it in the wrapper". Run with the venv's Python (PyYAML comes
with Schemathesis).
"""

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
PASSWORD = "correct horse battery"
CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
])
# The operations that can end the caller's own session (logout, and
# revoking a session by an id the fuzzer read from the list), with their
# per-project and seed twins: fuzzed last, in a pass of their own with
# another account.
ENDS_CREDENTIALS = "^(logout|revokeSession)"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(method, url, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


ENVELOPED = ("/api/v1/auth", "/api/v1/projects/{project_id}/auth", "/api/v1/settings")


def with_envelope(document):
    """The document with each success answer of the trees a project's
    `response_envelope` wraps allowed in the wrapper too."""
    for path, item in document["paths"].items():
        if not path.startswith(ENVELOPED):
            continue
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {}).get("application/json")
                if str(status).startswith("2") and content and "schema" in content:
                    schema = content["schema"]
                    wrapped = {"type": "object", "required": ["success", "data"],
                               "properties": {"success": {"const": True}, "data": schema}}
                    content["schema"] = {"anyOf": [schema, wrapped]}
    return document


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    binary, schemathesis = sys.argv[1], sys.argv[2]
    seconds = int(sys.argv[3]) if len(sys.argv) == 4 else 240
    work = pathlib.Path(tempfile.mkdtemp(prefix="portcullis-fuzz-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PORTCULLIS_LISTEN": f"127.0.0.1:{port}",
        "PORTCULLIS_DATA_DIR": str(work / "data"),
        "PORTCULLIS_RATE_LIMIT": "off",
        "PORTCULLIS_HASH_MEMORY_KIB": "1024",
        "PORTCULLIS_HASH_ITERATIONS": "1",
        "PORTCULLIS_LOG_LEVEL": "warn",
    }
    log = open(work / "gateway.log", "w")
    gateway = subprocess.Popen([binary, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while True:
            try:
                if call("GET", f"{base}/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                sys.exit("contract fuzz: the gateway did not start")
            time.sleep(0.2)
        status, admin = call("POST", f"{base}/api/v1/auth/register",
                             {"email": "fuzz-admin@example.com", "password": PASSWORD, "name": "Fuzz"})
        assert status == 201, (status, admin)
        bearer = {"Authorization": f"Bearer {admin['token']}"}
        status, key = call("POST", f"{base}/api/v1/auth/api-keys", {"name": "fuzz", "scopes": ["introspect"]}, bearer)
        assert status == 201, (status, key)

        status, other = call("POST", f"{base}/api/v1/auth/register",
                             {"email": "fuzz-user@example.com", "password": PASSWORD, "name": "Fuzz"})
        assert status == 201, (status, other)

        document = work / "openapi.json"
        document.write_text(json.dumps(with_envelope(yaml.safe_load((ROOT / "openapi.yaml").read_text())), default=str))

        config = work / "schemathesis.toml"
        config.write_text("\n".join([
            f'base-url = "{base}"',
            # One worker: with two threads, hypothesis's ast.parse of its own
            # lambdas crashed CPython 3.11.7 ("AST constructor recursion depth
            # mismatch"), a tool error that failed a CI run.
            "workers = 1",
            "[generation]",
            f"max-examples = {os.environ.get('FUZZ_MAX_EXAMPLES', '8')}",
            "database = \"none\"",
            "[auth.openapi.bearer]",
            'bearer = "${PORTCULLIS_FUZZ_TOKEN}"',
            "[auth.openapi.apiKey]",
            'api_key = "${PORTCULLIS_FUZZ_KEY}"',
            "[auth.openapi.adminSession]",
            'api_key = "${PORTCULLIS_FUZZ_TOKEN}"',
        ]) + "\n")

        def fuzz(token, budget, selection):
            env = dict(os.environ, PORTCULLIS_FUZZ_TOKEN=token, PORTCULLIS_FUZZ_KEY=key["api_key"])
            command = [
                schemathesis, "--config-file", str(config), "run", str(document),
                "--checks", CHECKS, "--max-time", str(budget), "--seed", "1", "--no-color",
                "--output-truncate", "false", *selection,
            ]
            print("contract fuzz:", " ".join(selection) or "every other operation", flush=True)
            try:
                return subprocess.run(command, env=env, timeout=budget + 120).returncode
            except subprocess.TimeoutExpired:
                sys.exit(f"contract fuzz: Schemathesis ran over {budget + 120} s")

        first = fuzz(admin["token"], seconds * 5 // 6, ["--exclude-operation-id-regex", ENDS_CREDENTIALS])
        last = fuzz(other["token"], max(seconds // 6, 10),
                    ["--include-operation-id-regex", ENDS_CREDENTIALS, "--phases", "examples,coverage,fuzzing"])
        if gateway.poll() is not None:
            sys.exit("contract fuzz: the gateway died during the run; its log: " + (work / "gateway.log").read_text()[-4000:])
        sys.exit(first or last)
    finally:
        gateway.terminate()
        try:
            gateway.wait(timeout=30)
        except subprocess.TimeoutExpired:
            gateway.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
