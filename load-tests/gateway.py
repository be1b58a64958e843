"""A gateway binary on a free loopback port, for the load-test drivers
(smoke.py, soak, churn). Standard library only.

    with Gateway(binary, {"PORTCULLIS_RATE_LIMIT": "off"}) as gateway:
        admin = gateway.post("/api/v1/auth/register", {...})

The data directory is fresh (a temporary one under `data_root`, default the
system's) unless `data_dir` names one to keep (a restart over the same
data), hashing is cheap unless `settings` says otherwise, and only the
given PORTCULLIS_* variables reach the process: it refuses unknown ones.
"""
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

START_DEADLINE = 30


def memory(pid):
    """(resident bytes, peak resident bytes) of a process, from /proc."""
    fields = {}
    with open(f"/proc/{pid}/status") as text:
        for line in text:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) * 1024
    return fields["VmRSS"], fields["VmHWM"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gateway:
    def __init__(self, binary, settings=None, data_root=None, data_dir=None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._data = tempfile.TemporaryDirectory(dir=data_root) if data_dir is None else None
        self.data_dir = data_dir if data_dir is not None else self._data.name
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
        env = dict(inherited, PORTCULLIS_LISTEN=f"127.0.0.1:{self.port}", PORTCULLIS_DATA_DIR=self.data_dir,
                   PORTCULLIS_HASH_MEMORY_KIB="1024", PORTCULLIS_HASH_ITERATIONS="1", PORTCULLIS_LOG_LEVEL="warn")
        env.update(settings or {})
        self.process = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL)
        self.pid = self.process.pid
        deadline = time.monotonic() + START_DEADLINE
        while True:
            try:
                urllib.request.urlopen(f"{self.base}/healthz", timeout=2).read()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit(f"the gateway {binary} did not start")
                time.sleep(0.05)

    def request(self, method, path, body=None, token=None, headers=None):
        """(status, parsed JSON body or None); error statuses are answers too."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.base}{path}", data=data, method=method)
        if body is not None:
            request.add_header("content-type", "application/json")
        if token:
            request.add_header("authorization", f"Bearer {token}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, text = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read()
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, None

    def post(self, path, body, token=None):
        """The JSON answer of a POST that must succeed."""
        status, answer = self.request("POST", path, body, token)
        if status >= 300:
            raise SystemExit(f"POST {path} answered {status}: {answer}")
        return answer

    def metrics(self):
        return urllib.request.urlopen(f"{self.base}/metrics", timeout=10).read().decode()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._data is not None:
            self._data.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
