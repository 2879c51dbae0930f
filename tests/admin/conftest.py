"""A real Portcullis process with its admin listener, for tests of the admin API that use
tools nobody here wrote (an OpenAPI validator, JSON Schema, the Prometheus client's parser).

The binary comes from $PORTCULLIS_BIN (set by the cargo test that runs this suite) or
target/debug/portcullis. Everything is on 127.0.0.1 ephemeral ports in a temp dir.
"""
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

import pyotp
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("PORTCULLIS_BIN", str(ROOT / "target" / "debug" / "portcullis"))
HOSTNAME = "mail.example.test"
DOMAIN = "example.test"
ALICE = "alice@example.test"
BOB = "bob@example.test"  # no account, and no administrator
ADMIN = "postmaster@example.test"  # an administrator (TOTP on) for the sign-in
PASSWORD = "plinth-orbit-cactus-9"
TRUSTED = "127.0.0.60"


class Server:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="portcullis-admin-"))
        os.chmod(self.dir, 0o755)  # the server may drop to nobody
        self.cert = self.dir / "cert.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-days", "2", "-subj", f"/CN={HOSTNAME}",
             "-addext", f"subjectAltName=DNS:{HOSTNAME},DNS:localhost,IP:127.0.0.1",
             "-keyout", str(self.dir / "key.pem"), "-out", str(self.cert)],
            check=True, capture_output=True)
        user = 'user = "nobody"\n' if os.geteuid() == 0 else ""
        self.config = self.dir / "portcullis.toml"
        self.config.write_text(
            f'hostname = "{HOSTNAME}"\ndata_dir = "data"\n'
            '[tls]\ncert = "cert.pem"\nkey = "key.pem"\n'
            '[listen]\nsubmissions = ["127.0.0.1:0"]\nimaps = ["127.0.0.1:0"]\nadmin = ["127.0.0.1:0"]\n'
            '[passwords]\nargon2_memory_kib = 1024\nargon2_iterations = 1\n'
            f'[process]\n{user}shutdown_grace = "2s"\n'
            f'[firewall]\ntrusted_networks = ["{TRUSTED}"]\n'
            '[guard]\nfailure_delay = "1ms"\nmax_failure_delay = "2ms"\n'
            f'[admin]\naccounts = ["{ADMIN}"]\n'
            '[log]\nformat = "json"\n')
        self.cli("domain", "add", DOMAIN)
        for account in (ALICE, ADMIN):
            self.cli("account", "add", account, "--password-stdin", stdin=PASSWORD + "\n")
        self.events = []
        self.proc = subprocess.Popen([BIN, "--config", str(self.config), "serve"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read_log, daemon=True).start()
        self.addrs = {}
        deadline = time.time() + 30
        while len(self.addrs) < 3:
            assert self.proc.poll() is None, f"server exited: {self.proc.stderr.read()}"
            assert time.time() < deadline, "server did not start"
            for e in list(self.events):
                if e.get("event") == "listening":
                    host, port = e["addr"].rsplit(":", 1)
                    self.addrs[e["listener"]] = (host, int(port))
            time.sleep(0.02)
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

    def enable_totp(self, user):
        """`account totp enable`, answered like a person with an authenticator app (pyotp)."""
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


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.stop()
