"""A real Portcullis process for clients nobody here wrote.

The binary comes from $PORTCULLIS_BIN (set by the cargo test that runs this suite) or
target/debug/portcullis. Everything is on 127.0.0.1 ephemeral ports in a temp dir, with a
certificate generated for the run.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("PORTCULLIS_BIN", str(ROOT / "target" / "debug" / "portcullis"))
HOSTNAME = "mail.example.test"
DOMAIN = "example.test"
ALICE = "alice@example.test"
BOB = "bob@example.test"
PASSWORD = "plinth-orbit-cactus-9"


def require(tool):
    """A missing client is a failure, not a skip: .ci/run installs them all."""
    path = shutil.which(tool)
    assert path, f"{tool} is not installed; run .ci/run or apt-get install it"
    return path


class Server:
    def __init__(self, extra_limits="", extra_sections=""):
        self.dir = Path(tempfile.mkdtemp(prefix="portcullis-clients-"))
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
            '[listen]\nsubmissions = ["127.0.0.1:0"]\nsubmission = ["127.0.0.1:0"]\nimaps = ["127.0.0.1:0"]\npop3s = ["127.0.0.1:0"]\n'
            '[passwords]\nargon2_memory_kib = 1024\nargon2_iterations = 1\n'
            f"[limits]\n{extra_limits}\n"
            f'[process]\n{user}shutdown_grace = "2s"\n'
            '[log]\nformat = "json"\n'
            f"{extra_sections}\n")
        self.cli("domain", "add", DOMAIN)
        for account in (ALICE, BOB):
            self.cli("account", "add", account, "--password-stdin", stdin=PASSWORD + "\n")
        self.events = []
        self.proc = subprocess.Popen([BIN, "--config", str(self.config), "serve"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read_log, daemon=True).start()
        self.ports = {}
        deadline = time.time() + 30
        while len(self.ports) < 4:
            assert self.proc.poll() is None, f"server exited: {self.proc.stderr.read()}"
            assert time.time() < deadline, "server did not start"
            for e in list(self.events):
                if e.get("event") == "listening":
                    self.ports[e["listener"]] = int(e["addr"].rsplit(":", 1)[1])
            time.sleep(0.02)

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

    def wait_event(self, pred, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for e in list(self.events):
                if pred(e):
                    return e
            time.sleep(0.02)
        raise AssertionError(f"no such event in {self.events}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def server():
    s = Server()
    yield s
    s.stop()
