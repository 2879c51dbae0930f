"""Python's imaplib (a full workflow, IDLE included) and curl over IMAPS."""
import imaplib
import re
import smtplib
import ssl
import subprocess
import threading
import time

from conftest import ALICE, BOB, PASSWORD, require


def context(server):
    return ssl.create_default_context(cafile=str(server.cert))


def connect(server, user=ALICE):
    m = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=context(server))
    m.login(user, PASSWORD)
    return m


def ok(result):
    typ, data = result
    assert typ == "OK", (typ, data)
    return data


def message(subject, body="hello\r\n"):
    return f"From: {ALICE}\r\nTo: {BOB}\r\nSubject: {subject}\r\nMessage-ID: <{subject.replace(' ', '.')}@test>\r\n\r\n{body}".encode()


def test_imaplib_full_workflow(server):
    m = connect(server)
    caps = ok(m.capability())[0].decode().upper().split()
    for cap in ("IMAP4REV2", "IDLE", "UIDPLUS", "MOVE", "CONDSTORE", "QRESYNC", "SPECIAL-USE", "LITERAL+", "QUOTA"):
        assert cap in caps, caps
    folders = [line.decode() for line in ok(m.list())]
    assert any(f.endswith('"INBOX"') for f in folders), folders
    assert any("\\Sent" in f for f in folders), folders
    ok(m.create("Projects/Portcullis"))
    assert any('"Projects/Portcullis"' in line.decode() for line in ok(m.list('""', "Projects/*")))

    for i in range(5):
        data = ok(m.append("INBOX", "(\\Seen)" if i == 0 else None, None, message(f"note {i}", f"body number {i}\r\n")))
        assert b"APPENDUID" in data[0]
    assert ok(m.select("INBOX"))[0] == b"5"

    assert ok(m.search(None, "SUBJECT", '"note 3"')) == [b"4"]
    assert ok(m.search(None, "UNSEEN")) == [b"2 3 4 5"]
    assert ok(m.uid("SEARCH", None, "BODY", '"number 2"')) == [b"3"]

    data = ok(m.fetch("2", "(UID FLAGS RFC822.SIZE ENVELOPE BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
    assert b"Subject: note 1" in data[0][1]
    body = ok(m.fetch("2", "(BODY[TEXT])"))[0][1]
    assert body == b"body number 1\r\n"
    assert b"\\Seen" in ok(m.fetch("2", "(FLAGS)"))[0]

    ok(m.store("3", "+FLAGS", "(\\Flagged $Important)"))
    assert b"$Important" in ok(m.fetch("3", "(FLAGS)"))[0]
    source_uid = re.search(rb"UID (\d+)", ok(m.fetch("3", "(UID)"))[0]).group(1)
    data = ok(m.copy("3", "Projects/Portcullis"))
    # RFC 4315 §3: the tagged OK names the target's UIDVALIDITY, the UIDs copied and their new
    # UIDs, here the first in the new mailbox.
    copyuid = re.search(rb"\[COPYUID (\d+) (\S+) (\S+)\]", data[0])
    assert copyuid, data
    assert copyuid.group(2) == source_uid and copyuid.group(3) == b"1", data
    typ, data = m.uid("MOVE", "4", "Archive")
    assert typ == "OK", data
    ok(m.store("1", "+FLAGS", "(\\Deleted)"))
    ok(m.expunge())
    assert ok(m.search(None, "ALL")) == [b"1 2 3"]

    ok(m.select("Projects/Portcullis", readonly=True))
    assert m.untagged_responses["UIDVALIDITY"] == [copyuid.group(1)], m.untagged_responses
    assert ok(m.fetch("1", "(FLAGS)"))[0].count(b"$Important") == 1
    assert re.search(rb"UID 1\b", ok(m.fetch("1", "(UID)"))[0])
    status = ok(m.status("Archive", "(MESSAGES UIDNEXT UNSEEN SIZE)"))[0]
    assert b"MESSAGES 1" in status
    typ, data = m.getquotaroot("INBOX")
    assert typ == "OK"
    ok(m.rename("Projects", "Done"))
    ok(m.delete("Done/Portcullis"))
    ok(m.delete("Done"))
    m.logout()


def test_idle_sees_a_delivery_within_a_moment(server):
    m = connect(server, BOB)
    ok(m.select("INBOX"))
    tag = m._new_tag().decode()
    m.send(f"{tag} IDLE\r\n".encode())
    assert m.readline().startswith(b"+ ")

    def deliver():
        time.sleep(0.3)
        with smtplib.SMTP_SSL("127.0.0.1", server.ports["submissions"], context=context(server)) as smtp:
            smtp.login(ALICE, PASSWORD)
            smtp.sendmail(ALICE, [BOB], message("pushed"))

    threading.Thread(target=deliver).start()
    m.sock.settimeout(15)
    line = m.readline()
    arrived = time.time()
    assert line == b"* 1 EXISTS\r\n", line
    accepted = server.wait_event(lambda e: e.get("event") == "message_accepted")
    # The push follows the commit closely (the issue asks for 100 ms; measured in docs/benchmarks.md).
    assert arrived - accepted["ts_ms"] / 1000 < 2.0
    m.send(b"DONE\r\n")
    # Untagged responses may come first (an IMAP4rev1 session hears `* 1 RECENT` at DONE).
    line = m.readline()
    while line.startswith(b"* "):
        line = m.readline()
    assert line.startswith(tag.encode() + b" OK"), line
    m.logout()


def test_two_sessions_see_each_others_changes(server):
    a = connect(server)
    b = connect(server)
    for i in range(3):
        ok(a.append("INBOX", None, None, message(f"shared {i}")))
    ok(a.select("INBOX"))
    ok(b.select("INBOX"))
    ok(b.store("2", "+FLAGS", "(\\Deleted \\Answered)"))
    typ, data = a.noop()
    assert typ == "OK"
    assert b"\\Answered" in b"".join(x for x in a.untagged_responses.get("FETCH", []) if isinstance(x, bytes))
    ok(b.expunge())
    a.untagged_responses.clear()
    a.noop()
    assert a.untagged_responses.get("EXPUNGE") == [b"2"], a.untagged_responses
    a.logout()
    b.logout()


def test_wrong_password_and_no_plaintext_login_before_tls(server):
    m = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=context(server))
    try:
        m.login(ALICE, "wrong-password")
        raise AssertionError("logged in with a wrong password")
    except imaplib.IMAP4.error as e:
        assert "AUTHENTICATIONFAILED" in str(e)
    # Plain TCP to the implicit-TLS port gets no IMAP greeting.
    import socket
    s = socket.create_connection(("127.0.0.1", server.ports["imaps"]), timeout=10)
    s.sendall(b"a LOGIN alice@example.test x\r\n")
    reply = b""
    try:
        while chunk := s.recv(4096):
            reply += chunk
    except OSError:
        pass
    assert b"* OK" not in reply and b"a OK" not in reply


def test_curl_imaps_list_and_fetch(server):
    m = connect(server)
    ok(m.append("INBOX", None, None, message("for curl", "curl reads this\r\n")))
    m.logout()
    curl = require("curl")
    base = f"imaps://127.0.0.1:{server.ports['imaps']}"
    auth = ["--cacert", str(server.cert), "--user", f"{ALICE}:{PASSWORD}", "--silent", "--show-error"]
    out = subprocess.run([curl, base + "/", *auth], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert '"INBOX"' in out.stdout and "\\Sent" in out.stdout, out.stdout
    out = subprocess.run([curl, base + "/INBOX;UID=1", *auth], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "curl reads this" in out.stdout
    out = subprocess.run([curl, base + "/INBOX?SUBJECT%20curl", *auth], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "SEARCH 1" in out.stdout, out.stdout + out.stderr
    out = subprocess.run([curl, base + "/", "--cacert", str(server.cert), "--user", f"{ALICE}:nope", "--silent"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 67, out.returncode
