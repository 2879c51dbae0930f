"""What the pytest suites (tests/clients, tests/admin) share: a real Portcullis process on
127.0.0.1 ephemeral ports in a temp dir, with a certificate generated for the run; waiting for
its log events with a deadline (the log is written apart from the answers clients get, so an
event read right after an answer may not be there yet); and what happens when a client
program or a Python module is missing: a skip that says what to install, or a failure when
PORTCULLIS_REQUIRE_ALL=1 (.ci/run sets it), so that CI cannot pass a suite that did not run.

The binary comes from $PORTCULLIS_BIN (set by the cargo test that runs a suite) or
target/debug/portcullis.
"""
import importlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = os.environ.get("PORTCULLIS_BIN", str(ROOT / "target" / "debug" / "portcullis"))
HOSTNAME = "mail.example.test"
DOMAIN = "example.test"
ALICE = "alice@example.test"
BOB = "bob@example.test"
PASSWORD = "plinth-orbit-cactus-9"
MAIL_LISTENERS = ("submissions", "submission", "imaps", "pop3s")
# How long to wait for something the server does on its own time (an event, a close).
DEADLINE = 15

REQUIRE_ALL = os.environ.get("PORTCULLIS_REQUIRE_ALL") == "1"
INSTALL_ALL = "or run .ci/run, which installs everything the suites use"


def missing(what, install):
    """Gives the current test (or module, at import) up for want of `what`."""
    message = f"{what}; install: {install} ({INSTALL_ALL})"
    if REQUIRE_ALL:
        pytest.fail(f"{message}, and PORTCULLIS_REQUIRE_ALL=1 says that every test must run", pytrace=False)
    pytest.skip(message, allow_module_level=True)


# Debian packages of the programs the suites run, where the name differs.
PACKAGES = {"mbsync": "isync", "openssl": "openssl", "node": "nodejs"}


def require(tool):
    """The path of a client program, or a skip (a failure under PORTCULLIS_REQUIRE_ALL)."""
    path = shutil.which(tool)
    if not path:
        missing(f"{tool} is not installed", f"apt-get install {PACKAGES.get(tool, tool)}")
    return path


def require_module(name, pip_name=None):
    """An imported Python module, or a skip of the module that needs it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"the Python module {name} is not installed", f"python3 -m pip install {pip_name or name}")


def wait_until(what, condition, timeout=DEADLINE):
    """condition()'s first true value, polled until the deadline; failing names `what`."""
    deadline = time.time() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.time() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.02)


class Server:
    """A Portcullis process with `listeners` (each on 127.0.0.1:0), the accounts `accounts`
    in example.test, extra `[limits]` lines and extra sections. `key` is the certificate's key
    type: "ec" (P-256) or "rsa" (2048 bits, for the cipher suites that need one)."""

    def __init__(self, listeners=MAIL_LISTENERS, accounts=(ALICE, BOB), extra_limits="", extra_sections="",
                 key="ec"):
        openssl = require("openssl")
        self.dir = Path(tempfile.mkdtemp(prefix="portcullis-pytest-"))
        os.chmod(self.dir, 0o755)  # the server may drop to nobody
        self.cert = self.dir / "cert.pem"
        newkey = {"ec": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
                  "rsa": ["-newkey", "rsa:2048"]}[key]
        subprocess.run(
            [openssl, "req", "-x509", *newkey, "-nodes", "-days", "2", "-subj", f"/CN={HOSTNAME}",
             "-addext", f"subjectAltName=DNS:{HOSTNAME},DNS:localhost,IP:127.0.0.1",
             "-keyout", str(self.dir / "key.pem"), "-out", str(self.cert)],
            check=True, capture_output=True)
        user = 'user = "nobody"\n' if os.geteuid() == 0 else ""
        listen = "".join(f'{name} = ["127.0.0.1:0"]\n' for name in listeners)
        self.config = self.dir / "portcullis.toml"
        self.config.write_text(
            f'hostname = "{HOSTNAME}"\ndata_dir = "data"\n'
            '[tls]\ncert = "cert.pem"\nkey = "key.pem"\n'
            f'[listen]\n{listen}'
            '[passwords]\nargon2_memory_kib = 1024\nargon2_iterations = 1\n'
            f"[limits]\n{extra_limits}\n"
            f'[process]\n{user}shutdown_grace = "2s"\n'
            '[log]\nformat = "json"\n'
            f"{extra_sections}\n")
        self.cli("domain", "add", DOMAIN)
        for account in accounts:
            self.cli("account", "add", account, "--password-stdin", stdin=PASSWORD + "\n")
        self.events = []
        self.proc = subprocess.Popen([BIN, "--config", str(self.config), "serve"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read_log, daemon=True).start()
        self.addrs = {}
        deadline = time.time() + 30
        while len(self.addrs) < len(listeners):
            assert self.proc.poll() is None, f"server exited: {self.proc.stderr.read()}"
            assert time.time() < deadline, "server did not start"
            for e in list(self.events):
                if e.get("event") == "listening":
                    host, port = e["addr"].rsplit(":", 1)
                    self.addrs[e["listener"]] = (host, int(port))
            time.sleep(0.02)
        self.ports = {name: port for name, (_, port) in self.addrs.items()}
        if "admin" in listeners:
            self.token = (self.dir / "data" / "admin.token").read_text().strip()
            self.base = "http://%s:%d" % self.addrs["admin"]

    def _read_log(self):
        for line in self.proc.stdout:
            try:
                self.events.append(json.loads(line))
            except ValueError:
                pass

    def cli(self, *args, stdin=None):
        out = subprocess.run([BIN, "--config", str(self.config), *args], input=stdin,
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def wait_event(self, pred, timeout=DEADLINE):
        """The first event matching pred, waiting for it until the deadline."""
        found = wait_until("an event", lambda: [e for e in list(self.events) if pred(e)], timeout)
        return found[0]

    def wait_events(self, pred, count, timeout=DEADLINE):
        """Every event matching pred, once there are at least `count` of them."""
        deadline = time.time() + timeout
        while True:
            found = [e for e in list(self.events) if pred(e)]
            if len(found) >= count:
                return found
            assert time.time() < deadline, f"{len(found)} of {count} events came: {found}"
            time.sleep(0.02)

    def enable_totp(self, user):
        """`account totp enable`, answered like a person with an authenticator app (pyotp)."""
        pyotp = require_module("pyotp")
        proc = subprocess.Popen([BIN, "--config", str(self.config), "account", "totp", "enable", user],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for line in proc.stdout:
            if line.startswith("otpauth://"):
                break
        totp = pyotp.parse_uri(line.strip())
        _, err = proc.communicate(totp.now() + "\n", timeout=30)
        assert proc.returncode == 0, err
        return totp

    def request(self, method, path, body=None, token=True, raw=None, content_type="application/json"):
        """(status, content type, body bytes) of one request to the admin listener; a body goes
        with `content_type`."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if token:
            req.add_header("Authorization", f"Bearer {self.token if token is True else token}")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=20) as resp:
                return resp.status, resp.headers.get("Content-Type", ""), resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type", ""), e.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
