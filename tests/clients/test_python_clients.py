"""Python's smtplib and poplib against Portcullis."""
import base64
import email
import email.policy
import os
import poplib
import smtplib
import ssl
from email.message import EmailMessage

import pytest

from conftest import ALICE, BOB, PASSWORD, HOSTNAME


def context(server):
    ctx = ssl.create_default_context(cafile=str(server.cert))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def message(attachment):
    msg = EmailMessage()
    msg["From"] = ALICE
    msg["To"] = BOB
    msg["Subject"] = "Grüße aus Köln ✓ – 日本語"
    msg.set_content("Hällo Bob,\n.a line starting with a dot\n\nbyte for byte, please.\n")
    msg.add_attachment(attachment, maintype="application", subtype="octet-stream", filename="random.bin")
    return msg


def retrieve_all(server, user=BOB):
    pop = poplib.POP3_SSL("127.0.0.1", server.ports["pop3s"], context=context(server))
    pop.user(user)
    pop.pass_(PASSWORD)
    count, _ = pop.stat()
    messages = [b"\r\n".join(pop.retr(i + 1)[1]) + b"\r\n" for i in range(count)]
    pop.quit()
    return messages


def flattened(msg):
    """What smtplib puts on the wire for msg (before dot-stuffing)."""
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def test_utf8_subject_and_binary_attachment_round_trip_over_465_and_995(server):
    attachment = os.urandom(200_000) + b"\r\n.\r\n\x00\xff"
    msg = message(attachment)
    expected = flattened(msg)  # fixes the MIME boundary before smtplib copies the message
    with smtplib.SMTP_SSL("127.0.0.1", server.ports["submissions"], context=context(server)) as smtp:
        smtp.login(ALICE, PASSWORD)
        refused = smtp.send_message(msg)
        assert refused == {}
    [raw] = retrieve_all(server)
    assert raw.endswith(expected), "the message comes back byte for byte after our trace headers"
    back = email.message_from_bytes(raw, policy=email.policy.default)
    assert back["Subject"] == "Grüße aus Köln ✓ – 日本語"
    [part] = list(back.iter_attachments())
    assert part.get_content() == attachment
    assert back["Received"].startswith("from ")


def test_starttls_on_587_then_auth_login(server):
    msg = message(b"\x00" * 10)
    with smtplib.SMTP("127.0.0.1", server.ports["submission"]) as smtp:
        smtp.ehlo()
        assert not smtp.has_extn("auth"), "AUTH must not be advertised before STARTTLS"
        with pytest.raises(smtplib.SMTPNotSupportedError):
            smtp.login(ALICE, PASSWORD)
        code, text = smtp.docmd("AUTH", "PLAIN " + base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode()).decode())
        assert code == 530 and text.startswith(b"5.7.0"), (code, text)
        code, _ = smtp.docmd("MAIL", f"FROM:<{ALICE}>")
        assert code == 530
        smtp.starttls(context=context(server))
        smtp.ehlo()
        assert "LOGIN" in smtp.esmtp_features["auth"]
        smtp.user, smtp.password = ALICE, PASSWORD
        code, _ = smtp.auth("LOGIN", smtp.auth_login, initial_response_ok=False)
        assert code == 235
        smtp.send_message(msg)
    assert len(retrieve_all(server)) == 1


def test_wrong_password_is_refused(server):
    with smtplib.SMTP_SSL("127.0.0.1", server.ports["submissions"], context=context(server)) as smtp:
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            smtp.login(ALICE, "wrong-password")
        assert e.value.smtp_code == 535
    pop = poplib.POP3_SSL("127.0.0.1", server.ports["pop3s"], context=context(server))
    pop.user(ALICE)
    with pytest.raises(poplib.error_proto) as e:
        pop.pass_("wrong-password")
    assert b"[AUTH]" in e.value.args[0]


def test_sending_as_another_user_is_refused(server):
    with smtplib.SMTP_SSL("127.0.0.1", server.ports["submissions"], context=context(server)) as smtp:
        smtp.login(ALICE, PASSWORD)
        with pytest.raises(smtplib.SMTPSenderRefused) as e:
            smtp.sendmail(BOB, [ALICE], b"Subject: forged\r\n\r\nno")
        assert e.value.smtp_code == 553 and b"5.7.1" in e.value.smtp_error


def test_pop3_listing_uidl_top_dele_and_auth_plain(server):
    with smtplib.SMTP_SSL("127.0.0.1", server.ports["submissions"], context=context(server)) as smtp:
        smtp.login(ALICE, PASSWORD)
        for i in range(3):
            smtp.sendmail(ALICE, [BOB], f"Subject: n{i}\r\n\r\nline1\r\nline2\r\n".encode())
    pop = poplib.POP3_SSL("127.0.0.1", server.ports["pop3s"], context=context(server))
    caps = pop.capa()
    assert "UIDL" in caps and "TOP" in caps and "SASL" in caps and caps["SASL"] == ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"]
    resp = pop._shortcmd("AUTH PLAIN " + base64.b64encode(f"\0{BOB}\0{PASSWORD}".encode()).decode())
    assert resp.startswith(b"+OK")
    assert pop.stat()[0] == 3
    uidls = pop.uidl()[1]
    assert len(uidls) == 3 and len(set(u.split()[1] for u in uidls)) == 3
    top = pop.top(2, 1)[1]
    assert top[-1] == b"line1" and b"Subject: n1" in top
    pop.dele(1)
    assert pop.stat()[0] == 2
    pop.quit()
    pop = poplib.POP3_SSL("127.0.0.1", server.ports["pop3s"], context=context(server))
    pop.user(BOB)
    pop.pass_(PASSWORD)
    assert pop.stat()[0] == 2
    assert pop.uidl()[1] == [b"1 " + uidls[1].split()[1], b"2 " + uidls[2].split()[1]]
    pop.quit()
