"""swaks and curl, the way admins test mail servers by hand."""
import base64
import smtplib
import subprocess

from conftest import ALICE, BOB, PASSWORD, require

# swaks's exit status when authentication fails or cannot be attempted (swaks(1), EXIT CODES).
SWAKS_AUTH_ERROR = 28


def swaks(server, *args):
    cmd = [require("swaks"), "--from", ALICE, "--to", BOB, "--auth-user", ALICE,
           "--header", "Subject: swaks test", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def curl(*args, stdin=None):
    return subprocess.run([require("curl"), "--silent", "--show-error", "--max-time", "30", *args],
                          input=stdin, capture_output=True, text=True, timeout=60)


def test_swaks_465_and_587_with_plain_and_login(server):
    for mechanism in ("PLAIN", "LOGIN"):
        out = swaks(server, "--server", f"127.0.0.1:{server.ports['submissions']}", "--tls-on-connect",
                    "--auth", mechanism, "--auth-password", PASSWORD)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "250 2.0.0 Message stored" in out.stdout
        out = swaks(server, "--server", f"127.0.0.1:{server.ports['submission']}", "--tls",
                    "--auth", mechanism, "--auth-password", PASSWORD)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "<-  220 2.0.0 Ready to start TLS" in out.stdout
    accepted = server.wait_events(lambda e: e.get("event") == "message_accepted", 4)
    assert len(accepted) == 4, accepted


def test_swaks_wrong_password(server):
    out = swaks(server, "--server", f"127.0.0.1:{server.ports['submissions']}", "--tls-on-connect",
                "--auth", "PLAIN", "--auth-password", "not-the-password")
    assert out.returncode != 0
    assert "535 5.7.8" in out.stdout


def test_swaks_587_without_tls_is_offered_no_auth(server):
    out = swaks(server, "--server", f"127.0.0.1:{server.ports['submission']}",
                "--auth", "PLAIN", "--auth-password", PASSWORD)
    assert out.returncode == SWAKS_AUTH_ERROR, (out.returncode, out.stdout + out.stderr)
    assert "250-AUTH" not in out.stdout and "250 AUTH" not in out.stdout
    assert "250-STARTTLS" in out.stdout or "250 STARTTLS" in out.stdout, out.stdout
    assert "Host did not advertise authentication" in out.stdout + out.stderr, out.stdout + out.stderr
    assert not [e for e in server.events if e.get("event") == "message_accepted"]
    # swaks will not send AUTH that is not advertised; smtplib's raw command does. Forcing it,
    # and the mail commands after it, gets the STARTTLS demand (RFC 3207 §4), never a login.
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=20) as smtp:
        smtp.ehlo("forcing.client")
        assert "auth" not in smtp.esmtp_features and "starttls" in smtp.esmtp_features
        initial = base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode()).decode()
        demand = (530, b"5.7.0 Must issue a STARTTLS command first")
        assert smtp.docmd("AUTH", f"PLAIN {initial}") == demand
        assert smtp.docmd("MAIL", f"FROM:<{ALICE}>") == demand
        assert smtp.docmd("RCPT", f"TO:<{BOB}>") == demand
    violation = server.wait_event(lambda e: e.get("event") == "protocol_violation")
    assert violation["what"] == "AUTH before STARTTLS" and violation["listener"] == "submission", violation
    assert not [e for e in server.events if e.get("event") in ("auth_succeeded", "auth_failed")]


def test_swaks_mail_from_another_user(server):
    out = subprocess.run([require("swaks"), "--from", BOB, "--to", ALICE, "--auth-user", ALICE,
                          "--auth-password", PASSWORD, "--auth", "PLAIN", "--tls-on-connect",
                          "--server", f"127.0.0.1:{server.ports['submissions']}"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "553 5.7.1" in out.stdout


def test_curl_smtps_and_starttls_then_pop3s(server):
    body = "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: via curl\r\n\r\nhello from curl\r\n"
    out = curl(f"smtps://127.0.0.1:{server.ports['submissions']}", "--cacert", str(server.cert),
               "--mail-from", ALICE, "--mail-rcpt", BOB, "--user", f"{ALICE}:{PASSWORD}", "-T", "-", stdin=body)
    assert out.returncode == 0, out.stderr
    out = curl(f"smtp://127.0.0.1:{server.ports['submission']}", "--ssl-reqd", "--cacert", str(server.cert),
               "--mail-from", ALICE, "--mail-rcpt", BOB, "--user", f"{ALICE}:{PASSWORD}", "-T", "-", stdin=body)
    assert out.returncode == 0, out.stderr

    base = f"pop3s://127.0.0.1:{server.ports['pop3s']}"
    out = curl(base + "/", "--cacert", str(server.cert), "--user", f"{BOB}:{PASSWORD}")
    assert out.returncode == 0, out.stderr
    assert [line.split()[0] for line in out.stdout.splitlines()] == ["1", "2"]
    out = curl(base + "/2", "--cacert", str(server.cert), "--user", f"{BOB}:{PASSWORD}",
               "--login-options", "AUTH=PLAIN")
    assert out.returncode == 0, out.stderr
    assert out.stdout.replace("\r\n", "\n").endswith(body.replace("\r\n", "\n"))

    out = curl(base + "/", "--cacert", str(server.cert), "--user", f"{BOB}:wrong-password")
    assert out.returncode == 67, (out.returncode, out.stderr)  # CURLE_LOGIN_DENIED
    out = curl(f"smtps://127.0.0.1:{server.ports['submissions']}", "--cacert", str(server.cert),
               "--mail-from", ALICE, "--mail-rcpt", BOB, "--user", f"{ALICE}:wrong", "-T", "-", stdin=body)
    assert out.returncode == 67, (out.returncode, out.stderr)
