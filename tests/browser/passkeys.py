#!/usr/bin/env python3
"""Passkeys in a real browser: Debian's Chromium, driven by Selenium, with
Chrome's virtual authenticator (CTAP2, internal, resident keys, user
verification).

The test serves tests/browser/passkey.html on http://localhost:<port> (a
host name, never an IP: WebAuthn needs a domain) and forwards its /api/
calls to the gateway, as a reverse proxy in front of it would; the gateway's
PORTCULLIS_PUBLIC_URL is that origin. In the page: register with a
password, add a passkey (navigator.credentials.create), log out, sign in
with the passkey for the address and usernameless
(navigator.credentials.get); each token must work on /auth/me, checked
directly against the gateway. A missing browser fails the test.

Usage: tests/browser/passkeys.py GATEWAY_BINARY [OUTPUT_DIR]
"""
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.virtual_authenticator import VirtualAuthenticatorOptions

PAGE = Path(__file__).resolve().parent / "passkey.html"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
EMAIL = "ada@browser.test"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(method, url, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if body is not None:
        request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def page_server(port, gateway):
    """The page at /, and /api/ forwarded to the gateway."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def answer(self, status, headers, body):
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def forward(self):
            if not self.path.startswith("/api/"):
                if self.command == "GET" and self.path in ("/", "/passkey.html"):
                    return self.answer(200, [("content-type", "text/html; charset=utf-8")], PAGE.read_bytes())
                return self.answer(404, [("content-type", "text/plain")], b"not found")
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else None
            request = urllib.request.Request(gateway + self.path, data=body, method=self.command)
            for name in ("content-type", "authorization"):
                if self.headers.get(name):
                    request.add_header(name, self.headers[name])
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    status, headers, payload = response.status, response.getheaders(), response.read()
            except urllib.error.HTTPError as e:
                status, headers, payload = e.code, e.headers.items(), e.read()
            keep = [(n, v) for n, v in headers if n.lower() in ("content-type", "cache-control", "retry-after")]
            self.answer(status, keep, payload)

        do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = forward

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def start_gateway(binary, port, public_url, data):
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
    env = dict(inherited, PORTCULLIS_LISTEN=f"127.0.0.1:{port}", PORTCULLIS_DATA_DIR=data,
               PORTCULLIS_PUBLIC_URL=public_url, PORTCULLIS_RATE_LIMIT="off",
               PORTCULLIS_HASH_MEMORY_KIB="1024", PORTCULLIS_HASH_ITERATIONS="1", PORTCULLIS_LOG_LEVEL="warn")
    server = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read()
            return server
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                sys.exit("the gateway did not start")
            time.sleep(0.05)


def browser(profile):
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            sys.exit(f"{path} is missing: the test command installs chromium and chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def run_in_page(driver, function, *args):
    """Awaits `function(...args)` in the page; its result, or {"error": ...}."""
    script = (f"const done = arguments[arguments.length - 1];"
              f"{function}(...Array.from(arguments).slice(0, -1))"
              f".then(done, e => done({{error: String(e && e.stack || e)}}));")
    return driver.execute_async_script(script, *args)


def expect(condition, what, detail=None):
    if not condition:
        raise AssertionError(f"{what}: {json.dumps(detail, indent=1) if detail is not None else ''}")
    print(f"ok: {what}")


def journey(driver, origin, gateway):
    driver.set_script_timeout(30)
    driver.get(origin + "/")
    expect(driver.title == "Portcullis passkey test page", "the page loads from its origin", driver.title)
    authenticator = VirtualAuthenticatorOptions()
    authenticator.protocol = VirtualAuthenticatorOptions.Protocol.CTAP2
    authenticator.transport = VirtualAuthenticatorOptions.Transport.INTERNAL
    authenticator.has_resident_key = True
    authenticator.has_user_verification = True
    authenticator.is_user_verified = True
    authenticator.is_user_consenting = True
    driver.add_virtual_authenticator(authenticator)

    registered = run_in_page(driver, "api", "POST", "/api/v1/auth/register",
                             {"email": EMAIL, "password": "a browser password", "name": "Ada"})
    expect(registered.get("status") == 201, "a password account is registered", registered)
    token = registered["body"]["token"]

    added = run_in_page(driver, "registerPasskey", token)
    expect(added.get("status") == 200 and added["body"]["name"] == "Test browser",
           "navigator.credentials.create registers a passkey", added)
    credentials = driver.get_credentials()
    expect(len(credentials) == 1 and credentials[0].is_resident_credential,
           "the authenticator holds one discoverable credential", [c.to_dict() for c in credentials])

    out = run_in_page(driver, "api", "POST", "/api/v1/auth/logout", {}, token)
    expect(out.get("status") == 200, "log out", out)
    status, _ = call("GET", f"{gateway}/api/v1/auth/me", token=token)
    expect(status == 401, "the old token stops working", status)

    for email, how in ((EMAIL, "with the address"), (None, "usernameless")):
        signed = run_in_page(driver, "loginWithPasskey", email)
        expect(signed.get("status") == 200 and signed["body"]["user"]["email"] == EMAIL,
               f"navigator.credentials.get signs in {how}", signed)
        expect(signed["allowed"] == (1 if email else 0), f"allowCredentials {how}", signed)
        status, me = call("GET", f"{gateway}/api/v1/auth/me", token=signed["body"]["token"])
        expect(status == 200 and me["email"] == EMAIL, f"the token ({how}) works on /auth/me", me)

    status, listed = call("GET", f"{gateway}/api/v1/auth/passkey/list", token=signed["body"]["token"])
    expect(status == 200 and len(listed["passkeys"]) == 1 and listed["passkeys"][0]["last_used_at"],
           "the passkey is listed, used", listed)


def main():
    binary = sys.argv[1]
    out_dir = Path(sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="browser-test-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    page_port, gateway_port = free_port(), free_port()
    origin = f"http://localhost:{page_port}"
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    data = tempfile.mkdtemp(prefix="browser-gateway-")
    profile = tempfile.mkdtemp(prefix="browser-profile-")
    gateway = start_gateway(binary, gateway_port, origin, data)
    pages = page_server(page_port, gateway_url)
    driver = None
    try:
        driver = browser(profile)
        journey(driver, origin, gateway_url)
        print("passkeys in a real browser: all checks passed")
    except Exception:
        if driver is not None:
            shot = out_dir / "passkeys-failure.png"
            driver.save_screenshot(str(shot))
            print(f"screenshot: {shot}", file=sys.stderr)
        raise
    finally:
        if driver is not None:
            driver.quit()
        pages.shutdown()
        gateway.terminate()
        gateway.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
