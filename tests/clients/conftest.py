"""The clients suite's fixture: a fresh Portcullis with every mail listener for each test
(tests/portcullis_testlib.py, shared with tests/admin, has the server and the helpers)."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from portcullis_testlib import (  # noqa: E402  (the path above first)
    ALICE, BIN, BOB, DEADLINE, DOMAIN, HOSTNAME, PASSWORD, ROOT, Server, require, require_module, wait_until)

__all__ = ["ALICE", "BIN", "BOB", "DEADLINE", "DOMAIN", "HOSTNAME", "PASSWORD", "ROOT", "Server", "require",
           "require_module", "wait_until"]


@pytest.fixture
def server():
    s = Server()
    yield s
    s.stop()
