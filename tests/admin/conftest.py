"""The admin suite's fixture: one Portcullis with its admin listener for the module, for tests
of the admin API that use tools nobody here wrote (an OpenAPI validator, JSON Schema, the
Prometheus client's parser). tests/portcullis_testlib.py, shared with tests/clients, has the
server and the helpers."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from portcullis_testlib import ALICE, PASSWORD, ROOT, Server  # noqa: E402  (the path above first)

BOB = "bob@example.test"  # no account, and no administrator
ADMIN = "postmaster@example.test"  # an administrator (TOTP on) for the sign-in
TRUSTED = "127.0.0.60"

__all__ = ["ADMIN", "ALICE", "BOB", "PASSWORD", "ROOT", "TRUSTED"]


@pytest.fixture(scope="module")
def server():
    s = Server(
        listeners=("submissions", "imaps", "admin"),
        accounts=(ALICE, ADMIN),
        extra_sections=(f'[firewall]\ntrusted_networks = ["{TRUSTED}"]\n'
                        '[guard]\nfailure_delay = "1ms"\nmax_failure_delay = "2ms"\n'
                        f'[admin]\naccounts = ["{ADMIN}"]\n'
                        # Outbound mail stays queued: the resolver is a port nobody answers on
                        # (each attempt is deferred), and a retry waits an hour.
                        '[dns]\nservers = ["127.0.0.1:9"]\ntimeout = "200ms"\nattempts = 1\n'
                        '[queue]\nretry_first = "1h"\n'))
    yield s
    s.stop()
