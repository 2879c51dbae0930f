"""openssl s_client probing the TLS policy, and fetchmail collecting mail over POP3S."""
import os
import poplib
import smtplib
import ssl
import subprocess

from conftest import ALICE, BOB, PASSWORD, HOSTNAME, Server, require


def s_client(port, *args, starttls=None):
    cmd = [require("openssl"), "s_client", "-connect", f"127.0.0.1:{port}", "-servername", HOSTNAME, *args]
    if starttls:
        cmd += ["-starttls", starttls]
    out = subprocess.run(cmd, input="", capture_output=True, text=True, timeout=30)
    return out.returncode, out.stdout + out.stderr


def handshake_ok(output):
    return "Cipher is (NONE)" not in output and "New, " in output


def test_tls_1_1_and_older_are_refused_on_every_port(server):
    probes = [(server.ports["submissions"], None), (server.ports["pop3s"], None), (server.ports["submission"], "smtp")]
    for port, starttls in probes:
        for version in ("-tls1_1", "-tls1"):
            # SECLEVEL=0 lets this client offer the old version: the refusal must be the server's.
            code, out = s_client(port, version, "-cipher", "DEFAULT:@SECLEVEL=0", starttls=starttls)
            assert "no protocols available" not in out, out
            assert code != 0 and not handshake_ok(out), f"{port} {version}: {out}"


def tls12_suites(server, weak, strong):
    """TLS 1.2 probes of single suites on 465: each weak one refused by the server, each strong
    one accepted (which shows that the certificate could serve the weak ones too)."""
    port = server.ports["submissions"]
    failures = len([e for e in server.events if e.get("event") == "tls_failed"])
    for suite in weak:
        # SECLEVEL=0 lets this client offer the suite: the refusal must be the server's.
        code, out = s_client(port, "-tls1_2", "-cipher", f"{suite}:@SECLEVEL=0")
        assert "no cipher match" not in out and "no ciphers available" not in out, out
        assert code != 0 and not handshake_ok(out), f"{suite} was accepted: {out}"
    server.wait_events(lambda e: e.get("event") == "tls_failed", failures + len(weak))
    for suite in strong:
        code, out = s_client(port, "-tls1_2", "-cipher", suite)
        assert handshake_ok(out) and suite in out, out


def test_only_aead_suites_with_forward_secrecy(server):
    # The run's certificate is ECDSA: suites that sign with ECDSA.
    tls12_suites(server, weak=("ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384"),
                 strong=("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"))
    code, out = s_client(server.ports["submissions"], "-tls1_3")
    assert handshake_ok(out) and "TLSv1.3" in out, out
    code, out = s_client(server.ports["submission"], "-tls1_3", starttls="smtp")
    assert handshake_ok(out) and "TLSv1.3" in out, out


def test_no_suite_without_forward_secrecy_with_an_rsa_certificate():
    """The suites without forward secrecy (RSA key exchange) exist only with an RSA certificate:
    probed against a server with an ECDSA one, they fail for want of a certificate, whatever the
    server's policy. So here the server has an RSA certificate."""
    server = Server(key="rsa")
    try:
        tls12_suites(
            server,
            weak=(
                "AES128-GCM-SHA256", "AES256-GCM-SHA384",  # AEAD, but RSA key exchange: no forward secrecy
                "AES128-SHA", "AES256-SHA256",  # RSA key exchange and CBC
                "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA384",  # forward secrecy, but CBC
                "DHE-RSA-AES128-GCM-SHA256",  # finite-field Diffie-Hellman
            ),
            strong=("ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-CHACHA20-POLY1305"))
    finally:
        server.stop()


def test_fetchmail_collects_and_deletes_over_pop3s(server, tmp_path):
    ctx = ssl.create_default_context(cafile=str(server.cert))
    with smtplib.SMTP_SSL("127.0.0.1", server.ports["submissions"], context=ctx) as smtp:
        smtp.login(ALICE, PASSWORD)
        for i in range(2):
            smtp.sendmail(ALICE, [BOB], f"Subject: fetch {i}\r\n\r\nfor fetchmail {i}\r\n".encode())
    mbox = tmp_path / "collected"
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        f'set no syslog\n'
        f'poll {HOSTNAME} via 127.0.0.1 with proto POP3 port {server.ports["pop3s"]}\n'
        f'  user "{BOB}" there with password "{PASSWORD}" is "{os.environ.get("USER", "root")}" here\n'
        f'  ssl sslcertck sslcertfile "{server.cert}" sslcommonname "{HOSTNAME}" sslproto "TLS1.2+"\n'
        f'  mda "/bin/sh -c \'cat >> {mbox}\'"\n')
    rc.chmod(0o600)
    out = subprocess.run([require("fetchmail"), "--fetchmailrc", str(rc), "--idfile", str(tmp_path / "ids"),
                          "--pidfile", str(tmp_path / "pid"), "--nodetach", "-v"],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stdout + out.stderr
    collected = mbox.read_text()
    assert "for fetchmail 0" in collected and "for fetchmail 1" in collected
    pop = poplib.POP3_SSL("127.0.0.1", server.ports["pop3s"], context=ctx)
    pop.user(BOB)
    pop.pass_(PASSWORD)
    assert pop.stat()[0] == 0, "fetchmail deleted what it collected"
    pop.quit()
