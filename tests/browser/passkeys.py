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
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path

from common import authenticator, browser_session, call, expect, free_port, run_in_page, running_gateway

PAGE = Path(__file__).resolve().parent / "passkey.html"
EMAIL = "ada@browser.test"


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


def journey(driver, origin, gateway):
    driver.set_script_timeout(30)
    driver.get(origin + "/")
    expect(driver.title == "Portcullis passkey test page", "the page loads from its origin", driver.title)
    authenticator(driver)

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
    with running_gateway(binary, gateway_port, origin):
        pages = page_server(page_port, gateway_url)
        try:
            with browser_session(out_dir, "passkeys") as driver:
                journey(driver, origin, gateway_url)
            print("passkeys in a real browser: all checks passed")
        finally:
            pages.shutdown()


if __name__ == "__main__":
    main()
