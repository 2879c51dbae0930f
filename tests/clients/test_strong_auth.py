"""Strong authentication with clients nobody here wrote: every SASL mechanism on SMTP, IMAP and
POP3 (Python's imaplib/smtplib/poplib, curl's SASL options, the `scramp` SCRAM library over
pyOpenSSL, GNU gsasl), channel binding and a man in the middle, app passwords, and TOTP
enrollment with `pyotp` as the authenticator app."""
import base64
import imaplib
import poplib
import re
import smtplib
import socket
import ssl
import struct
import subprocess
import time

import pytest

from conftest import ALICE, BIN, BOB, HOSTNAME, PASSWORD, Server, require, require_module

pyotp = require_module("pyotp")
scramp = require_module("scramp")
SSL = require_module("OpenSSL.SSL", "pyOpenSSL")


def context(server):
    ctx = ssl.create_default_context(cafile=str(server.cert))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def imap(server):
    return imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=context(server))


def pop3(server):
    return poplib.POP3_SSL("127.0.0.1", server.ports["pop3s"], context=context(server))


def smtps(server):
    return smtplib.SMTP_SSL("127.0.0.1", server.ports["submissions"], context=context(server))


def auth_events(server, since, kind=None, count=1):
    """The logins (of `kind`) logged from event number `since` on, once there are `count`: the
    log is written apart from the answers clients get."""
    kinds = (kind,) if kind else ("auth_succeeded", "auth_failed")
    return server.wait_events(lambda e: e in server.events[since:] and e.get("event") in kinds, count)


# scramp implements the SCRAM messages and proofs but refuses the `tls-exporter` binding name
# (it cannot read the exporter from Python's ssl module). With the exporter value taken from
# OpenSSL through pyOpenSSL, the same computation applies (RFC 9266), so allow the name.
scramp.core.CbName.SUPPORTED_TYPES = scramp.core.CbName.SUPPORTED_TYPES | {"tls-exporter"}
scramp.core.CbName.UNSUPPORTED_TYPES = frozenset()


def scram_client(password, binding=None, user=ALICE):
    if binding is None:
        return scramp.ScramClient(["SCRAM-SHA-256"], user, password)
    return scramp.ScramClient(["SCRAM-SHA-256-PLUS"], user, password, channel_binding=("tls-exporter", binding))


class Scram:
    """A SCRAM exchange as a callback for imaplib.authenticate and smtplib.auth."""

    def __init__(self, client):
        self.client = client
        self.step = 0

    def __call__(self, challenge):
        self.step += 1
        if self.step == 1:
            return self.client.get_client_first()
        if self.step == 2:
            self.client.set_server_first(challenge.decode())
            return self.client.get_client_final()
        self.client.set_server_final(challenge.decode())  # checks the server's signature
        self.verified = True
        return ""


class OpenSslLines:
    """A line-oriented TLS connection through pyOpenSSL, which can export keying material."""

    def __init__(self, server, port):
        ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
        ctx.load_verify_locations(str(server.cert))
        ctx.set_verify(SSL.VERIFY_PEER, lambda *args: args[-1])
        sock = socket.create_connection(("127.0.0.1", port))
        # pyOpenSSL wants a blocking socket; the kernel bounds each read instead.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 10, 0))
        self.conn = SSL.Connection(ctx, sock)
        self.conn.set_tlsext_host_name(HOSTNAME.encode())
        self.conn.set_connect_state()
        self.conn.do_handshake()
        self.buffer = b""

    def binding(self):
        return self.conn.export_keying_material(b"EXPORTER-Channel-Binding", 32)

    def line(self):
        while b"\r\n" not in self.buffer:
            data = self.conn.recv(4096)
            if not data:
                raise EOFError(self.buffer)
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line.decode()

    def send(self, text):
        self.conn.sendall(text.encode() + b"\r\n")

    def close(self):
        self.conn.close()


def b64(text):
    return base64.b64encode(text.encode()).decode()


def unb64(text):
    return base64.b64decode(text).decode()


def imap_scram_plus(server, client, channel):
    """SCRAM-SHA-256-PLUS over raw IMAP; returns the tagged answer."""
    assert channel.line().startswith("* OK")
    channel.send("a AUTHENTICATE SCRAM-SHA-256-PLUS")
    assert channel.line() == "+ "
    channel.send(b64(client.get_client_first()))
    challenge = channel.line()
    assert challenge.startswith("+ "), challenge
    client.set_server_first(unb64(challenge[2:]))
    channel.send(b64(client.get_client_final()))
    answer = channel.line()
    if answer.startswith("+ "):
        client.set_server_final(unb64(answer[2:]))
        channel.send("")
        answer = channel.line()
    return answer


# --- PLAIN and LOGIN -------------------------------------------------------------------------


def test_plain_and_login_with_pythons_clients(server):
    with smtps(server) as smtp:
        smtp.ehlo()
        assert "SCRAM-SHA-256-PLUS" in smtp.esmtp_features["auth"]
        smtp.user, smtp.password = ALICE, PASSWORD
        assert smtp.auth("PLAIN", smtp.auth_plain)[0] == 235
    with smtps(server) as smtp:
        smtp.ehlo()
        smtp.user, smtp.password = ALICE, PASSWORD
        assert smtp.auth("LOGIN", smtp.auth_login, initial_response_ok=False)[0] == 235
    m = imap(server)
    assert b"AUTH=SCRAM-SHA-256-PLUS" in m.capabilities[-1].encode() or "AUTH=SCRAM-SHA-256-PLUS" in m.capabilities
    assert m.authenticate("PLAIN", lambda _: f"\0{ALICE}\0{PASSWORD}")[0] == "OK"
    m.logout()
    m = imap(server)
    assert m.login(ALICE, PASSWORD)[0] == "OK"
    m.logout()
    p = pop3(server)
    assert "SASL PLAIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS" in [c.decode() for c in p._longcmd("CAPA")[1]]
    assert p._shortcmd("AUTH PLAIN " + b64(f"\0{ALICE}\0{PASSWORD}")).startswith(b"+OK")
    p.quit()
    mechanisms = {(e["listener"], e["mechanism"]) for e in auth_events(server, 0, "auth_succeeded", 5)}
    assert {("submissions", "PLAIN"), ("submissions", "LOGIN"), ("imaps", "PLAIN"), ("imaps", "LOGIN"),
            ("pop3s", "PLAIN")} <= mechanisms
    assert all(e["credential"] == "password" for e in auth_events(server, 0))


def test_curl_sasl_options(server):
    curl = require("curl")
    base = [curl, "-sS", "--cacert", str(server.cert), "--resolve", f"{HOSTNAME}:{{}}:127.0.0.1"]

    def run(url, port, *extra):
        args = [a.format(port) if "{}" in a else a for a in base]
        return subprocess.run([*args, "--user", f"{ALICE}:{PASSWORD}", *extra, url], capture_output=True, text=True)

    port = server.ports["imaps"]
    for options in (["--login-options", "AUTH=PLAIN", "--sasl-ir"], ["--login-options", "AUTH=PLAIN"]):
        out = run(f"imaps://{HOSTNAME}:{port}/", port, *options)
        assert out.returncode == 0 and "INBOX" in out.stdout, out.stderr
    port = server.ports["pop3s"]
    out = run(f"pop3s://{HOSTNAME}:{port}/", port, "--login-options", "AUTH=PLAIN", "--sasl-ir")
    assert out.returncode == 0, out.stderr
    port = server.ports["submissions"]
    msg = f"From: {ALICE}\r\nTo: {BOB}\r\nSubject: curl sasl\r\n\r\nhi\r\n"
    for mech in ("PLAIN", "LOGIN"):
        args = [a.format(port) if "{}" in a else a for a in base]
        out = subprocess.run([*args, "--user", f"{ALICE}:{PASSWORD}", "--login-options", f"AUTH={mech}",
                              "--mail-from", ALICE, "--mail-rcpt", BOB, "-T", "-", f"smtps://{HOSTNAME}:{port}/"],
                             input=msg, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
    # A wrong password is refused whatever the mechanism.
    args = [a.format(port) if "{}" in a else a for a in base]
    out = subprocess.run([*args, "--user", f"{ALICE}:wrong-password", "--login-options", "AUTH=LOGIN",
                          "--mail-from", ALICE, "--mail-rcpt", BOB, "-T", "-", f"smtps://{HOSTNAME}:{port}/"],
                         input=msg, capture_output=True, text=True)
    assert out.returncode == 67, (out.returncode, out.stderr)  # CURLE_LOGIN_DENIED
    failed = auth_events(server, 0, "auth_failed")
    assert failed and failed[-1]["mechanism"] == "LOGIN" and failed[-1]["reason"] == "wrong_password"


# --- SCRAM ------------------------------------------------------------------------------------


def test_scram_sha_256_with_scramp_on_all_three_protocols(server):
    exchange = Scram(scram_client(PASSWORD))
    m = imap(server)
    assert m.authenticate("SCRAM-SHA-256", exchange)[0] == "OK"
    assert exchange.verified, "the server proved it knows the keys too"
    m.logout()

    with smtps(server) as smtp:
        smtp.ehlo()
        exchange = Scram(scram_client(PASSWORD))
        assert smtp.auth("SCRAM-SHA-256", exchange, initial_response_ok=False)[0] == 235
        assert exchange.verified

    p = pop3(server)
    client = scram_client(PASSWORD)
    p._putcmd("AUTH SCRAM-SHA-256 " + b64(client.get_client_first()))
    challenge = p._getline()[0].decode()
    assert challenge.startswith("+ "), challenge
    client.set_server_first(unb64(challenge[2:]))
    p._putcmd(b64(client.get_client_final()))
    final = p._getline()[0].decode()
    client.set_server_final(unb64(final[2:]))
    p._putcmd("")
    assert p._getline()[0].startswith(b"+OK")
    assert p.stat()[0] == 0
    p.quit()

    # A wrong password fails the proof: one failed login, counted like any other.
    m = imap(server)
    with pytest.raises(imaplib.IMAP4.error):
        m.authenticate("SCRAM-SHA-256", Scram(scram_client("not-the-password")))
    m.logout()
    failed = auth_events(server, 0, "auth_failed")[-1]
    assert (failed["mechanism"], failed["reason"]) == ("SCRAM-SHA-256", "wrong_password")
    ok = [e for e in auth_events(server, 0, "auth_succeeded", 3) if e["mechanism"] == "SCRAM-SHA-256"]
    assert {e["listener"] for e in ok} == {"imaps", "submissions", "pop3s"}


def test_scram_plus_binds_to_the_tls_connection_and_catches_a_man_in_the_middle(server):
    port = server.ports["imaps"]
    channel = OpenSslLines(server, port)
    client = scram_client(PASSWORD, channel.binding())
    assert imap_scram_plus(server, client, channel).startswith("a OK")
    channel.send("b SELECT INBOX")
    while not (line := channel.line()).startswith("b "):
        pass
    assert line.startswith("b OK")
    channel.close()

    # A man in the middle terminates the client's TLS with its own certificate and relays the
    # exchange over its own connection to the server: the client binds to the MITM's
    # connection, which the server cannot match.
    clients_side = OpenSslLines(server, port)
    servers_side = OpenSslLines(server, port)
    clients_side.line()
    client = scram_client(PASSWORD, clients_side.binding())
    answer = imap_scram_plus(server, client, servers_side)
    assert answer.startswith("a NO [AUTHENTICATIONFAILED]"), answer
    clients_side.close()
    servers_side.close()
    failed = server.wait_event(lambda e: e.get("event") == "auth_failed" and e["reason"] == "channel_binding_mismatch")
    assert failed["mechanism"] == "SCRAM-SHA-256-PLUS" and failed["username"] == ALICE
    alert = server.wait_event(lambda e: e.get("event") == "alert_raised" and e["kind"] == "channel_binding_mismatch")
    assert alert["severity"] == "critical"

    # Claiming no binding ("y": client thinks the server has none) while it is advertised is a
    # downgrade, refused.
    channel = OpenSslLines(server, port)
    channel.line()
    channel.send("c AUTHENTICATE SCRAM-SHA-256")
    channel.line()
    channel.send(b64(f"y,,n={ALICE},r=abcdefghijklmnop"))
    refused = channel.line()
    assert refused.startswith("c BAD"), refused
    channel.close()


def test_gsasl_scram_plus_over_starttls_on_587(server):
    gsasl = require("gsasl")
    port = server.ports["submission"]

    def run(*options, password=PASSWORD):
        return subprocess.run(
            [gsasl, "--smtp", "--connect", f"127.0.0.1:{port}", "--hostname", HOSTNAME, "--starttls",
             "--x509-ca-file", str(server.cert), "-a", ALICE, "-p", password, "--verbose", *options],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)

    since = len(server.events)
    out = run("-m", "SCRAM-SHA-256-PLUS")
    assert out.returncode == 0, out.stdout + out.stderr
    out = run("-m", "SCRAM-SHA-256", "--no-cb")
    assert out.returncode == 0, out.stdout + out.stderr
    out = run("-m", "SCRAM-SHA-256-PLUS", password="not-the-password")
    assert out.returncode != 0
    events = auth_events(server, since, count=3)
    assert [(e["event"], e["mechanism"]) for e in events] == [
        ("auth_succeeded", "SCRAM-SHA-256-PLUS"), ("auth_succeeded", "SCRAM-SHA-256"),
        ("auth_failed", "SCRAM-SHA-256-PLUS")]
    assert all(e["listener"] == "submission" for e in events)


# --- App passwords ----------------------------------------------------------------------------


def add_app_password(server, *args):
    out = server.cli("account", "app-password", "add", ALICE, *args)
    return re.search(r"shown only this once\): (\S+)", out).group(1)


def test_app_password_scope_listing_and_revocation(server):
    secret = add_app_password(server, "--name", "phone", "--scope", "imap")
    m = imap(server)
    assert m.login(ALICE, secret)[0] == "OK"
    assert m.select("INBOX")[0] == "OK"
    ok = server.wait_event(lambda e: e.get("event") == "auth_succeeded" and e.get("app_password") == "phone")
    assert ok["credential"] == "app_password" and ok["mechanism"] == "LOGIN"

    # Out of scope on POP3 and SMTP.
    p = pop3(server)
    p.user(ALICE)
    with pytest.raises(poplib.error_proto):
        p.pass_(secret)
    p.quit()
    with smtps(server) as smtp, pytest.raises(smtplib.SMTPAuthenticationError):
        smtp.login(ALICE, secret)
    refusals = server.wait_events(lambda e: e.get("event") == "auth_failed" and e.get("app_password") == "phone", 2)
    assert {(e["listener"], e["reason"]) for e in refusals} == {
        ("pop3s", "app_password_out_of_scope"), ("submissions", "app_password_out_of_scope")}

    listing = server.cli("account", "app-password", "list", ALICE)
    row = next(line for line in listing.splitlines() if line.startswith("phone"))
    assert "imap " in row and "active" in row and "127.0.0.1" in row, listing

    # Revoked: the open session is closed at once, and the secret opens nothing more.
    server.cli("account", "app-password", "revoke", ALICE, "phone")
    closed = server.wait_event(lambda e: e.get("event") == "app_password_session_closed")
    assert closed["app_password"] == "phone" and closed["account"] == ALICE
    with pytest.raises((imaplib.IMAP4.abort, OSError, EOFError)):
        m.noop()
    with pytest.raises(imaplib.IMAP4.error):
        imap(server).login(ALICE, secret)
    assert "revoked" in server.cli("account", "app-password", "list", ALICE)


def test_app_password_for_every_protocol_revoked_everywhere_and_expiry(server):
    secret = add_app_password(server, "--name", "laptop")
    smtp = smtps(server)
    smtp.login(ALICE, secret)
    smtp.sendmail(ALICE, [BOB], f"From: {ALICE}\r\nTo: {BOB}\r\nSubject: via app password\r\n\r\nhi\r\n")
    p = pop3(server)
    p.user(ALICE)
    assert p.pass_(secret).startswith(b"+OK")
    m = imap(server)
    assert m.login(ALICE, secret.replace("-", "").upper())[0] == "OK", "typed without dashes, in capitals"
    ok = [e["listener"] for e in server.wait_events(
        lambda e: e.get("event") == "auth_succeeded" and e.get("app_password") == "laptop", 3)]
    assert sorted(ok) == ["imaps", "pop3s", "submissions"]

    # Revoked: all three open sessions are closed, whatever they were doing.
    server.cli("account", "app-password", "revoke", ALICE, "laptop")
    server.wait_events(lambda e: e.get("event") == "app_password_session_closed", 3)
    with pytest.raises((smtplib.SMTPServerDisconnected, OSError)):
        smtp.noop()
    with pytest.raises((poplib.error_proto, OSError, EOFError)):
        p.stat()
    with pytest.raises((imaplib.IMAP4.abort, OSError, EOFError)):
        m.noop()

    short = add_app_password(server, "--name", "temporary", "--expires", "5s")
    m = imap(server)
    assert m.login(ALICE, short)[0] == "OK"
    server.wait_event(lambda e: e.get("event") == "app_password_session_closed" and e["app_password"] == "temporary")
    with pytest.raises(imaplib.IMAP4.error):
        imap(server).login(ALICE, short)
    out = subprocess.run([BIN, "--config", str(server.config), "account", "app-password", "add", ALICE, "--name",
                          "laptop"], capture_output=True, text=True)
    assert out.returncode != 0 and "already exists" in out.stderr


# --- TOTP -------------------------------------------------------------------------------------


def enroll(server, user=ALICE, wrong_first=True):
    """`account totp enable`, answered like a person with an authenticator app."""
    proc = subprocess.Popen([BIN, "--config", str(server.config), "account", "totp", "enable", user],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("otpauth://"):
            break
    uri = lines[-1].strip()
    assert any("█" in l or "▀" in l or "▄" in l for l in lines), "a QR code is drawn"
    totp = pyotp.parse_uri(uri)
    assert totp.issuer == "Portcullis" and totp.name == user
    code = totp.now()
    answers = ("000000\n" if code != "000000" else "111111\n") if wrong_first else ""
    out, err = proc.communicate(answers + code + "\n", timeout=30)
    assert proc.returncode == 0, err
    assert "not valid" in err or not wrong_first
    recovery = re.findall(r"^  ([a-z2-9]{4}(?:-[a-z2-9]{4}){3})$", out, re.M)
    assert len(recovery) == 10, out
    return totp, code, recovery


def totp_check(server, password, code, user=ALICE):
    return subprocess.run([BIN, "--config", str(server.config), "account", "totp", "check", user],
                          input=f"{password}\n{code}\n", capture_output=True, text=True)


def test_totp_enrollment_codes_replay_and_recovery(server):
    totp, used, recovery = enroll(server)

    # The main password no longer opens mail protocols, and the refusal says what to do.
    m = imap(server)
    with pytest.raises(imaplib.IMAP4.error, match="app password"):
        m.login(ALICE, PASSWORD)
    with smtps(server) as smtp, pytest.raises(smtplib.SMTPAuthenticationError, match="app password"):
        smtp.login(ALICE, PASSWORD)
    p = pop3(server)
    p.user(ALICE)
    with pytest.raises(poplib.error_proto, match="app password"):
        p.pass_(PASSWORD)
    p.quit()
    with pytest.raises(imaplib.IMAP4.error):
        imap(server).authenticate("SCRAM-SHA-256", Scram(scram_client(PASSWORD)))
    reasons = {e["reason"] for e in auth_events(server, 0, "auth_failed", 4)}
    assert reasons == {"second_factor_required"}

    # An app password still works.
    secret = add_app_password(server, "--name", "mail")
    assert imap(server).login(ALICE, secret)[0] == "OK"

    # Password plus code, as the admin sign-in asks: the enrollment code is spent already;
    # wrong codes and wrong passwords fail; a code works once.
    assert "replayed code" in totp_check(server, PASSWORD, used).stderr
    wrong = "000000" if totp.now() != "000000" else "111111"
    assert "wrong code" in totp_check(server, PASSWORD, wrong).stderr
    code = totp.at(int(time.time()) + 30)  # the next time step's, accepted for clock skew
    assert "wrong password" in totp_check(server, "not-the-password", code).stderr
    assert totp_check(server, PASSWORD, code).returncode == 0
    out = totp_check(server, PASSWORD, code)
    assert out.returncode != 0 and "replayed code" in out.stderr

    # A recovery code works once.
    assert totp_check(server, PASSWORD, recovery[0]).returncode == 0
    assert "wrong code" in totp_check(server, PASSWORD, recovery[0]).stderr
    assert totp_check(server, PASSWORD, recovery[1].replace("-", "").upper()).returncode == 0

    # Off again: the password opens mail clients once more.
    server.cli("account", "totp", "disable", ALICE)
    assert imap(server).login(ALICE, PASSWORD)[0] == "OK"


def test_totp_enrollment_needs_a_valid_code(server):
    proc = subprocess.run([BIN, "--config", str(server.config), "account", "totp", "enable", BOB],
                          input="123456\n654321\n000000\n", capture_output=True, text=True)
    assert proc.returncode != 0 and "was not turned on" in proc.stderr
    assert imap(server).login(BOB, PASSWORD)[0] == "OK", "nothing changed"


def test_failures_count_alike_in_the_guard_whatever_the_mechanism():
    """A PLAIN failure, a wrong SCRAM proof and a relayed SCRAM-PLUS proof are three strikes."""
    server = Server(extra_sections='[guard]\nban_after_failures = 3\nfailure_delay = "10ms"\n')
    try:
        m = imap(server)
        with pytest.raises(imaplib.IMAP4.error):
            m.authenticate("PLAIN", lambda _: f"\0{ALICE}\0not-the-password")
        with pytest.raises(imaplib.IMAP4.error):
            m.authenticate("SCRAM-SHA-256", Scram(scram_client("not-the-password")))
        m.logout()
        assert not [e for e in server.events if e.get("event") == "ban_added"]
        clients_side = OpenSslLines(server, server.ports["imaps"])
        servers_side = OpenSslLines(server, server.ports["imaps"])
        clients_side.line()
        # The third strike bans the address, and a ban closes the sessions from it at once, this
        # one too: a revoked session sends nothing more, not even this command's answer.
        with pytest.raises((SSL.SysCallError, SSL.ZeroReturnError, EOFError)):
            imap_scram_plus(server, scram_client(PASSWORD, clients_side.binding()), servers_side)
        ban = server.wait_event(lambda e: e.get("event") == "ban_added")
        assert ban["network"] == "127.0.0.1/32" and ban["origin"] == "auto"
        reasons = [e["reason"] for e in server.wait_events(lambda e: e.get("event") == "auth_failed", 3)]
        assert reasons == ["wrong_password", "wrong_password", "channel_binding_mismatch"]
    finally:
        server.stop()
