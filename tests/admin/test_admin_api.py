"""The admin API as described by crates/server/openapi.yaml, checked against the live server:
the description is valid OpenAPI 3.1 (openapi-spec-validator); every documented operation is
called, every answer's status is one the description lists for it, and every JSON body
validates against the schema it documents (jsonschema, Draft 2020-12). /metrics is read with
the Prometheus project's own Python parser. What the account operations do to logins and
sessions is checked with Python's imaplib: a new password replaces the old one and closes the
sessions, a revoked app password closes only its own.
"""
import imaplib
import smtplib
import ssl
import subprocess
import time
import urllib.parse

import pytest

from conftest import ADMIN, ALICE, BOB, PASSWORD, ROOT, TRUSTED
from portcullis_testlib import BIN, require_module

jsonschema = require_module("jsonschema")
yaml = require_module("yaml", "pyyaml")
validate_spec = require_module("openapi_spec_validator", "openapi-spec-validator").validate
text_string_to_metric_families = require_module("prometheus_client.parser", "prometheus-client").text_string_to_metric_families
referencing = require_module("referencing")
Registry, Resource = referencing.Registry, referencing.Resource
DRAFT202012 = require_module("referencing.jsonschema").DRAFT202012

SPEC_PATH = ROOT / "crates" / "server" / "openapi.yaml"
SPEC = yaml.safe_load(SPEC_PATH.read_text())
REGISTRY = Registry().with_resource("urn:openapi", Resource.from_contents(SPEC, default_specification=DRAFT202012))
METHODS = {"get", "post", "put", "patch", "delete"}


def pointer(*parts):
    return "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def resolve(node):
    while "$ref" in node:
        target = SPEC
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


class Checker:
    """Calls the API and checks each answer against the description."""

    def __init__(self, server):
        self.server = server
        self.seen = {}  # (method, template) -> set of statuses

    def call(self, method, template, params=None, body=None, token=True, raw=None, query="",
             content_type="application/json"):
        path = template
        for name, value in (params or {}).items():
            path = path.replace("{%s}" % name, urllib.parse.quote(str(value), safe=""))
        status, content_type, payload = self.server.request(method, path + query, body=body, token=token, raw=raw,
                                                            content_type=content_type)
        operation = SPEC["paths"][template][method.lower()]
        responses = operation["responses"]
        assert str(status) in responses, f"{method} {path}: {status} is not documented ({payload[:200]!r})"
        self.seen.setdefault((method.lower(), template), set()).add(status)
        response = resolve(responses[str(status)])
        content = response.get("content")
        if not content:
            assert payload == b"", f"{method} {path}: {status} documents no body, got {payload[:200]!r}"
            return status, None
        media = content_type.split(";")[0].strip()
        assert media in content, f"{method} {path}: {media} not documented for {status}"
        if media != "application/json":
            return status, payload.decode()
        import json
        document = json.loads(payload)
        ref = "urn:openapi#/" + pointer("paths", template, method.lower(), "responses", str(status))
        if "$ref" in responses[str(status)]:
            ref = "urn:openapi" + responses[str(status)]["$ref"]
        schema = {"$ref": ref + "/" + pointer("content", media, "schema")}
        jsonschema.Draft202012Validator(schema, registry=REGISTRY).validate(document)
        return status, document


@pytest.fixture(scope="module")
def api(server):
    return Checker(server)


def test_the_description_is_valid_openapi():
    validate_spec(SPEC)
    assert SPEC["openapi"].startswith("3.1")


def test_every_operation_answers_as_documented(server, api):
    # Public: the description itself, and the sign-in of administrator accounts.
    status, text = api.call("GET", "/api/v1/openapi.yaml", token=False)
    assert status == 200 and text == SPEC_PATH.read_text()
    totp = server.enable_totp(ADMIN)
    code = totp.at(int(time.time()) + 30)  # the next step's: enrollment spent this one's
    sign_in = {"account": ADMIN, "password": PASSWORD, "totp": code}
    assert api.call("POST", "/api/v1/signin", body={**sign_in, "password": "x"}, token=False)[0] == 401
    assert api.call("POST", "/api/v1/signin", body={**sign_in, "account": BOB}, token=False)[0] == 401
    status, session = api.call("POST", "/api/v1/signin", body=sign_in, token=False)
    assert status == 200 and session["expires_in"] > 0
    assert api.call("GET", "/api/v1/status", token=session["token"])[0] == 200
    assert api.call("POST", "/api/v1/signin", body=sign_in, token=False)[0] == 401, "a code works once"
    assert api.call("POST", "/api/v1/signin", raw=b"{", token=False)[0] == 400
    # Only JSON that says so: an HTML form elsewhere cannot post here.
    for media in ("text/plain", "application/x-www-form-urlencoded"):
        assert api.call("POST", "/api/v1/signin", body=sign_in, token=False, content_type=media)[0] == 415
    # The log is written apart from the answers: wait for the three refusals.
    failed = server.wait_events(lambda e: e.get("event") == "admin_auth_failed", 3)
    reasons = [(e.get("account"), e.get("reason")) for e in failed]
    assert reasons == [(ADMIN, "wrong_password"), (BOB, "not_administrator"), (ADMIN, "replayed_code")]

    # Everything else needs the token.
    assert api.call("GET", "/api/v1/status", token=False)[0] == 401
    assert api.call("GET", "/api/v1/status", token="not-the-token")[0] == 401
    assert api.call("GET", "/metrics", token=False)[0] == 401

    # A live IMAP session from a new address (which raises an alert), listed and then closed.
    context = ssl.create_default_context(cafile=str(server.cert))
    host, port = server.addrs["imaps"]
    imap = imaplib.IMAP4_SSL(host, port, ssl_context=context, timeout=20)
    imap.login(ALICE, PASSWORD)
    status, listed = api.call("GET", "/api/v1/sessions")
    assert status == 200 and listed["partial"] is False and listed["nodes_missing"] == []
    mine = [s for s in listed["sessions"] if s["account"] == ALICE]
    assert len(mine) == 1 and mine[0]["node"] in listed["nodes"]
    assert mine[0]["global_id"] == f'{mine[0]["node"]}:{mine[0]["id"]}'
    assert api.call("DELETE", "/api/v1/sessions/{id}", {"id": mine[0]["global_id"]})[0] == 204
    assert api.call("DELETE", "/api/v1/sessions/{id}", {"id": mine[0]["id"]})[0] == 404
    assert api.call("DELETE", "/api/v1/sessions/{id}", {"id": mine[0]["global_id"]})[0] == 404
    assert api.call("DELETE", "/api/v1/sessions/{id}", {"id": "x"})[0] == 400
    # A node nobody runs never answers: the kill is only signalled.
    status, signalled = api.call("DELETE", "/api/v1/sessions/{id}", {"id": "nowhere:1:1:7"})
    assert status == 202 and signalled == {"status": "signalled", "session": "nowhere:1:1:7"}
    closed = server.wait_event(lambda e: e.get("event") == "connection_closed" and e.get("conn") == mine[0]["id"])
    assert closed["reason"] == "revoked"
    with pytest.raises((imaplib.IMAP4.abort, OSError, EOFError)):
        imap.noop()

    status, status_doc = api.call("GET", "/api/v1/status")
    assert status == 200 and {l["name"] for l in status_doc["listeners"]} == {"submissions", "imaps", "admin"}

    # Bans.
    status, ban = api.call("POST", "/api/v1/bans", body={"network": "127.0.0.50", "duration": "1h", "reason": "t"})
    assert status == 201 and ban["network"] == "127.0.0.50/32"
    assert api.call("POST", "/api/v1/bans", body={"network": "not a network"})[0] == 400
    assert api.call("POST", "/api/v1/bans", body={"network": "127.0.0.51"}, content_type="text/plain")[0] == 415
    assert api.call("POST", "/api/v1/bans", body={"network": TRUSTED})[0] == 409
    assert api.call("GET", "/api/v1/bans")[1][0]["network"] == "127.0.0.50/32"
    assert api.call("GET", "/api/v1/bans", query="?all=true")[0] == 200
    assert api.call("GET", "/api/v1/bans", query="?all=perhaps")[0] == 400
    assert api.call("DELETE", "/api/v1/bans/{network}", {"network": "127.0.0.50/32"})[0] == 204
    assert api.call("DELETE", "/api/v1/bans/{network}", {"network": "127.0.0.50/32"})[0] == 404
    assert api.call("DELETE", "/api/v1/bans/{network}", {"network": "nonsense"})[0] == 400

    # Alerts.
    status, alerts = api.call("GET", "/api/v1/alerts")
    assert status == 200 and any(a["kind"] == "new_login_address" for a in alerts)
    status, acked = api.call("POST", "/api/v1/alerts/{id}/ack", {"id": alerts[0]["id"]})
    assert status == 200 and acked["acknowledged"]
    assert api.call("POST", "/api/v1/alerts/{id}/ack", {"id": 99999})[0] == 404
    assert api.call("POST", "/api/v1/alerts/{id}/ack", {"id": "first"})[0] == 400
    assert all(not a["acknowledged"] for a in api.call("GET", "/api/v1/alerts", query="?unacknowledged=true")[1])
    assert api.call("GET", "/api/v1/alerts", query="?unacknowledged=2")[0] == 400

    # Domains.
    assert api.call("POST", "/api/v1/domains", body={"domain": "second.test"})[0] == 201
    assert api.call("POST", "/api/v1/domains", body={"domain": "second.test"})[0] == 409
    assert api.call("POST", "/api/v1/domains", body={"domain": "not a domain"})[0] == 400
    assert api.call("POST", "/api/v1/domains", body={"domain": "x.test"}, content_type="text/plain")[0] == 415
    assert api.call("GET", "/api/v1/domains")[1] == ["example.test", "second.test"]
    assert api.call("DELETE", "/api/v1/domains/{domain}", {"domain": "second.test"})[0] == 204
    assert api.call("DELETE", "/api/v1/domains/{domain}", {"domain": "second.test"})[0] == 404
    assert api.call("DELETE", "/api/v1/domains/{domain}", {"domain": "example.test"})[0] == 409
    assert api.call("DELETE", "/api/v1/domains/{domain}", {"domain": "bad domain"})[0] == 400
    # Its DNS checklist: the records `portcullis dns` prints, and with check=true the verdicts.
    DNS = "/api/v1/domains/{domain}/dns"
    status, plan = api.call("GET", DNS, {"domain": "Example.TEST"})
    assert status == 200 and plan["domain"] == "example.test" and not plan["checked"]
    assert {"MX", "TXT", "SRV"} <= {r["type"] for r in plan["records"]}
    assert all("status" not in r and r["zone_line"].startswith(r["name"] + ".") for r in plan["records"])
    status, checked = api.call("GET", DNS, {"domain": "example.test"}, query="?check=true")
    assert status == 200 and checked["checked"] and len(checked["records"]) == len(plan["records"])
    assert all(r["status"] in ("ok", "missing", "wrong", "unknown") for r in checked["records"])
    assert api.call("GET", DNS, {"domain": "elsewhere.test"})[0] == 404
    assert api.call("GET", DNS, {"domain": "bad domain"})[0] == 400
    assert api.call("GET", DNS, {"domain": "example.test"}, query="?check=maybe")[0] == 400

    # Accounts.
    status, made = api.call("POST", "/api/v1/accounts", body={"address": "carol@example.test"})
    assert status == 201 and len(made["password"]) >= 12
    assert api.call("POST", "/api/v1/accounts", body={"address": "carol@example.test"})[0] == 409
    assert api.call("POST", "/api/v1/accounts", body={"address": "dan@example.test", "password": "short"})[0] == 400
    assert api.call("POST", "/api/v1/accounts", body={"address": "erin@elsewhere.test"})[0] == 404
    assert api.call("POST", "/api/v1/accounts", body={"address": "f@example.test"}, content_type="text/plain")[0] == 415
    assert any(a["address"] == "carol@example.test" for a in api.call("GET", "/api/v1/accounts")[1])
    assert api.call("DELETE", "/api/v1/accounts/{address}", {"address": "carol@example.test"})[0] == 204
    assert api.call("DELETE", "/api/v1/accounts/{address}", {"address": "carol@example.test"})[0] == 404
    assert api.call("DELETE", "/api/v1/accounts/{address}", {"address": "nobody"})[0] == 400

    # One account: its page, quota, password, app passwords (what each does to sessions and
    # logins is tested apart, below).
    account_operations(server, api)
    # The outbound queue.
    queue_operations(server, api)
    # TOTP: the administrator's, locked by wrong codes, unlocked, then turned off, which ends
    # the sign-in made with it.
    totp_operations(server, api, totp, session["token"])

    # The dashboard's series, and the metrics.
    status, series = api.call("GET", "/api/v1/series")
    assert status == 200 and len(series["lines"]) == 4
    status, text = api.call("GET", "/metrics")
    assert status == 200
    # The load balancers' health check: public, and nothing but up or not.
    assert api.call("GET", "/health", token=False) == (200, "ok\n")

    # Every operation in the description was called and gave its success answer at least once.
    for template, item in SPEC["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            seen = api.seen.get((method, template), set())
            successes = {int(code) for code in operation["responses"] if code.startswith("2")}
            assert seen, f"{method.upper()} {template} was never called"
            assert seen & successes or template == "/api/v1/signin", f"{method.upper()} {template}: only {seen}"


def queue_operations(server, api):
    """Two messages queued for remote domains (each attempt deferred), looked at, held,
    released, retried and removed."""
    context = ssl.create_default_context(cafile=str(server.cert))
    with smtplib.SMTP_SSL("127.0.0.1", server.ports["submissions"], context=context) as smtp:
        smtp.login(ALICE, PASSWORD)
        for to in ("x@far.test", "y@other.test"):
            smtp.sendmail(ALICE, [to], f"From: <{ALICE}>\r\nSubject: to {to}\r\n\r\nHello.\r\n")
    server.wait_events(lambda e: e.get("event") == "delivery_attempt" and e.get("deferred") == 1, 2)
    QUEUED = "/api/v1/queue/{id}"
    status, page = api.call("GET", "/api/v1/queue")
    listed = page["messages"]
    assert status == 200 and len(listed) == 2 and listed[0]["state"] == "deferred" and "next_after" not in page
    first, second = listed[0]["id"], listed[1]["id"]
    status, page = api.call("GET", "/api/v1/queue", query="?limit=1")
    assert status == 200 and [m["id"] for m in page["messages"]] == [first] and page["next_after"] == first
    page = api.call("GET", "/api/v1/queue", query=f"?limit=1&after={first}")[1]
    assert [m["id"] for m in page["messages"]] == [second] and "next_after" not in page
    assert api.call("GET", "/api/v1/queue", query="?limit=0")[0] == 400
    assert [m["id"] for m in api.call("GET", "/api/v1/queue", query="?domain=far.test")[1]["messages"]] == [first]
    assert api.call("GET", "/api/v1/queue", query="?state=held")[1] == {"messages": []}
    assert api.call("GET", "/api/v1/queue", query="?state=frozen")[0] == 400
    status, shown = api.call("GET", QUEUED, {"id": first}, query="?body=true")
    assert status == 200 and "Subject: to x@far.test" in shown["headers"] and "Hello." in shown["body"]
    assert "body" not in api.call("GET", QUEUED, {"id": first})[1]
    assert api.call("GET", QUEUED, {"id": 9999})[0] == 404
    assert api.call("GET", QUEUED, {"id": "first"})[0] == 400
    status, held = api.call("POST", QUEUED + "/hold", {"id": second})
    assert status == 200 and held["held"] and held["next_attempt"] is None
    assert api.call("POST", QUEUED + "/hold", {"id": 9999})[0] == 404
    assert api.call("POST", QUEUED + "/hold", {"id": "x"})[0] == 400
    assert api.call("POST", QUEUED + "/retry", {"id": second})[0] == 409
    status, summary = api.call("GET", "/api/v1/queue/summary")
    assert status == 200 and (summary["messages"], summary["held"]) == (2, 1)
    assert {d["domain"] for d in summary["domains"]} == {"far.test", "other.test"}
    assert api.call("POST", "/api/v1/queue/retry")[1] == {"made_due": 1}
    assert api.call("POST", "/api/v1/queue/retry", query="?domain=other.test")[1] == {"made_due": 0}
    assert api.call("POST", "/api/v1/queue/retry", query="?domain=%zz")[0] == 400
    status, released = api.call("POST", QUEUED + "/release", {"id": second})
    assert status == 200 and not released["held"]
    assert api.call("POST", QUEUED + "/release", {"id": 9999})[0] == 404
    assert api.call("POST", QUEUED + "/release", {"id": "x"})[0] == 400
    assert api.call("POST", QUEUED + "/retry", {"id": second})[0] == 200
    assert api.call("POST", QUEUED + "/retry", {"id": 9999})[0] == 404
    assert api.call("POST", QUEUED + "/retry", {"id": "x"})[0] == 400
    for id in (first, second):
        assert api.call("DELETE", QUEUED, {"id": id})[0] == 204
    assert api.call("DELETE", QUEUED, {"id": first})[0] == 404
    assert api.call("DELETE", QUEUED, {"id": "x"})[0] == 400
    assert api.call("GET", "/api/v1/queue/summary")[1]["messages"] == 0
    assert api.call("GET", "/api/v1/queue", token=False)[0] == 401


DORA = {"address": "dora@example.test"}
NOBODY = {"address": "nobody@example.test"}
ACCOUNT = "/api/v1/accounts/{address}"
QUOTA = ACCOUNT + "/quota"
NEW_PASSWORD = ACCOUNT + "/password"
APP_PASSWORDS = ACCOUNT + "/app-passwords"
APP_PASSWORD = APP_PASSWORDS + "/{name}"
ALIASES = ACCOUNT + "/aliases"
ALIAS = ALIASES + "/{alias}"
TOTP = ACCOUNT + "/totp"
UNLOCK = TOTP + "/unlock"


def account_operations(server, api):
    status, _ = api.call("POST", "/api/v1/accounts", body={**DORA, "quota": "1MiB"})
    assert status == 201
    status, dora = api.call("GET", ACCOUNT, DORA)
    assert status == 200 and (dora["quota_bytes"], dora["quota_default"], dora["used_bytes"]) == (1 << 20, False, 0)
    assert {m["name"] for m in dora["mailboxes"]} >= {"INBOX", "Sent", "Trash"}
    assert dora["totp"] == {"enabled": False, "locked": False, "failures": 0} and dora["sessions"] == 0
    assert api.call("GET", ACCOUNT, NOBODY)[0] == 404
    assert api.call("GET", ACCOUNT, {"address": "nobody"})[0] == 400

    status, dora = api.call("PUT", QUOTA, DORA, body={"quota": "unlimited"})
    assert status == 200 and (dora["quota_bytes"], dora["quota_default"]) == (None, False)
    status, dora = api.call("PUT", QUOTA, DORA, body={"quota": "default"})
    assert status == 200 and dora["quota_default"]
    status, dora = api.call("PUT", QUOTA, DORA, body={"quota": "5MiB"})
    assert status == 200 and dora["quota_bytes"] == 5 << 20
    assert api.call("PUT", QUOTA, DORA, body={"quota": "lots"})[0] == 400
    assert api.call("PUT", QUOTA, DORA, body={"size": "1MiB"})[0] == 400
    assert api.call("PUT", QUOTA, DORA, body={"quota": "1MiB"}, content_type="text/plain")[0] == 415
    assert api.call("PUT", QUOTA, NOBODY, body={"quota": "1MiB"})[0] == 404

    status, reset = api.call("POST", NEW_PASSWORD, DORA, body={})
    assert status == 200 and reset["address"] == DORA["address"] and len(reset["password"]) >= 12
    status, reset = api.call("POST", NEW_PASSWORD, DORA, body={"password": "a-chosen-passphrase-for-dora-5"})
    assert status == 200 and reset["password"] is None
    status, refused = api.call("POST", NEW_PASSWORD, DORA, body={"password": "password1234"})
    assert status == 400 and "password" in refused["error"]
    assert api.call("POST", NEW_PASSWORD, DORA, body={}, content_type="application/x-www-form-urlencoded")[0] == 415
    assert api.call("POST", NEW_PASSWORD, NOBODY, body={"password": "short"})[0] == 404, "no account, said first"

    server.cli("account", "app-password", "add", DORA["address"], "--name", "dora phone", "--scope", "imap,smtp")
    status, listed = api.call("GET", APP_PASSWORDS, DORA)
    assert status == 200 and [(p["name"], p["scopes"], p["state"]) for p in listed] == [
        ("dora phone", ["imap", "smtp"], "active")]
    assert listed[0]["last_used"] is None and listed[0]["expires"] is None
    assert api.call("DELETE", APP_PASSWORD, {**DORA, "name": "dora phone"})[0] == 204
    assert api.call("DELETE", APP_PASSWORD, {**DORA, "name": "dora phone"})[0] == 404, "revoked already"
    assert api.call("DELETE", APP_PASSWORD, {**DORA, "name": "tablet"})[0] == 404
    assert api.call("GET", APP_PASSWORDS, DORA)[1][0]["state"] == "revoked"
    assert api.call("GET", APP_PASSWORDS, NOBODY)[0] == 404
    assert api.call("GET", APP_PASSWORDS, {"address": "@"})[0] == 400

    status, alias = api.call("POST", ALIASES, DORA, body={"alias": "Sales@example.test"})
    assert status == 201 and (alias["alias"], alias["account"]) == ("sales@example.test", DORA["address"])
    assert api.call("POST", ALIASES, DORA, body={"alias": "sales@example.test"})[0] == 409
    assert api.call("POST", ALIASES, DORA, body={"alias": "x@elsewhere.test"})[0] == 404
    assert api.call("POST", ALIASES, DORA, body={"alias": "x"})[0] == 400
    assert api.call("POST", ALIASES, NOBODY, body={"alias": "y@example.test"})[0] == 404
    assert api.call("POST", ALIASES, DORA, body={"alias": "z@example.test"}, content_type="text/plain")[0] == 415
    status, listed = api.call("GET", ALIASES, DORA)
    assert status == 200 and [a["alias"] for a in listed] == ["sales@example.test"]
    assert api.call("GET", ALIASES, NOBODY)[0] == 404
    assert api.call("DELETE", ALIAS, {**DORA, "alias": "sales@example.test"})[0] == 204
    assert api.call("DELETE", ALIAS, {**DORA, "alias": "sales@example.test"})[0] == 404
    assert api.call("DELETE", ALIAS, {**DORA, "alias": "bad"})[0] == 400

    # Without TOTP there is nothing to turn off or unlock.
    assert api.call("DELETE", TOTP, DORA)[0] == 404
    assert api.call("POST", UNLOCK, DORA)[0] == 404
    assert api.call("POST", UNLOCK, NOBODY)[0] == 404

    for action, target in [("account_quota", "dora@example.test"), ("account_password", "dora@example.test"),
                           ("app_password_revoke", "dora@example.test/dora phone"),
                           ("alias_add", "sales@example.test -> dora@example.test"),
                           ("alias_remove", "sales@example.test")]:
        server.wait_event(lambda e: e.get("event") == "admin_action" and (e["action"], e["target"]) == (action, target))


def wrong_code(totp):
    """A six-digit code that is none of the ones accepted now (the current step and its neighbours)."""
    now = int(time.time())
    valid = {totp.at(now + offset) for offset in (-30, 0, 30)}
    return next(code for code in (f"{n:06d}" for n in range(10**6)) if code not in valid)


def totp_operations(server, api, totp, session):
    admin = {"address": ADMIN}
    status, unlocked = api.call("POST", UNLOCK, admin)
    assert status == 200 and unlocked == {"was_locked": False}
    # Wrong codes with the right password (`account totp check`, on the store) lock it.
    wrong = wrong_code(totp)
    for _ in range(5):
        out = subprocess.run([BIN, "--config", str(server.config), "account", "totp", "check", ADMIN],
                             input=f"{PASSWORD}\n{wrong}\n", capture_output=True, text=True)
        assert out.returncode != 0, out.stdout
    status, detail = api.call("GET", ACCOUNT, admin)
    assert status == 200 and detail["totp"] == {"enabled": True, "locked": True, "failures": 5}
    status, unlocked = api.call("POST", UNLOCK, admin)
    assert status == 200 and unlocked == {"was_locked": True}
    assert api.call("GET", ACCOUNT, admin)[1]["totp"] == {"enabled": True, "locked": False, "failures": 0}

    assert api.call("GET", "/api/v1/status", token=session)[0] == 200
    assert api.call("DELETE", TOTP, admin)[0] == 204
    assert api.call("GET", "/api/v1/status", token=session)[0] == 401, "the sign-in made with TOTP ends with it"
    assert api.call("GET", ACCOUNT, admin)[1]["totp"]["enabled"] is False
    assert api.call("DELETE", TOTP, admin)[0] == 404
    for action in ("totp_unlock", "totp_reset"):
        server.wait_event(lambda e: e.get("event") == "admin_action" and (e["action"], e["target"]) == (action, ADMIN))
    # The password alone opens mail clients again.
    imap_login(server, ADMIN, PASSWORD).logout()


def imap_login(server, user, password):
    """An IMAPS session logged in as `user`; imaplib.IMAP4.error when the login is refused."""
    context = ssl.create_default_context(cafile=str(server.cert))
    imap = imaplib.IMAP4_SSL(*server.addrs["imaps"], ssl_context=context, timeout=20)
    try:
        imap.login(user, password)
    except imaplib.IMAP4.error:
        imap.shutdown()
        raise
    return imap


def closed_at_once(server, imap, event):
    """Whether the server closed `imap` before it answered the change (the server's own round
    through the store would take up to a second): the very next command finds the session gone.
    And the close is logged as `event` says."""
    try:
        imap.noop()
    except (imaplib.IMAP4.abort, OSError, EOFError):
        server.wait_event(event)
        return True
    return False


def test_metrics_parse_with_the_prometheus_client(server):
    context = ssl.create_default_context(cafile=str(server.cert))
    imap = imaplib.IMAP4_SSL(*server.addrs["imaps"], ssl_context=context, timeout=20)
    imap.login(ALICE, PASSWORD)
    imap.logout()
    status, content_type, body = server.request("GET", "/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    expected = {
        "portcullis_connections": "counter",
        "portcullis_sessions_active": "gauge",
        "portcullis_tls_handshakes": "counter",
        "portcullis_tls_handshake_seconds": "histogram",
        "portcullis_auth": "counter",
        "portcullis_messages": "counter",
        "portcullis_command_seconds": "histogram",
        "portcullis_bans_active": "gauge",
        "portcullis_alerts": "counter",
    }
    for name, kind in expected.items():
        assert name in families, f"{name} missing from {sorted(families)}"
        assert families[name].type == kind, name
    accepted = [s for s in families["portcullis_connections"].samples
                if s.labels == {"listener": "imaps", "outcome": "accepted"}]
    assert accepted and accepted[0].value >= 1
    logins = [s for s in families["portcullis_auth"].samples if s.labels.get("outcome") == "success"]
    assert logins and logins[0].labels["credential"] == "password"
    buckets = [s for s in families["portcullis_tls_handshake_seconds"].samples if s.name.endswith("_bucket")]
    assert buckets and buckets[-1].labels["le"] == "+Inf"


def test_a_new_password_closes_the_sessions_and_replaces_the_old_one(server, api):
    erin = {"address": "erin@example.test"}
    old = "erin-first-passphrase-31"
    assert api.call("POST", "/api/v1/accounts", body={**erin, "password": old})[0] == 201
    imap = imap_login(server, erin["address"], old)
    status, detail = api.call("GET", ACCOUNT, erin)
    assert status == 200 and detail["sessions"] == 1
    status, reset = api.call("POST", NEW_PASSWORD, erin, body={})
    assert status == 200
    assert closed_at_once(server, imap, lambda e: e.get("event") == "account_session_closed"
                  and e.get("account") == erin["address"] and e.get("reason") == "credentials_changed")
    with pytest.raises(imaplib.IMAP4.error):
        imap_login(server, erin["address"], old)
    fresh = imap_login(server, erin["address"], reset["password"])
    fresh.select("INBOX")
    fresh.logout()
    # A chosen one works as well, and the generated one no longer does.
    chosen = "erin-second-passphrase-47"
    assert api.call("POST", NEW_PASSWORD, erin, body={"password": chosen})[0] == 200
    imap_login(server, erin["address"], chosen).logout()
    with pytest.raises(imaplib.IMAP4.error):
        imap_login(server, erin["address"], reset["password"])


def test_revoking_an_app_password_closes_its_sessions_only(server, api):
    frank = {"address": "frank@example.test"}
    password = "frank-own-passphrase-83"
    assert api.call("POST", "/api/v1/accounts", body={**frank, "password": password})[0] == 201
    added = server.cli("account", "app-password", "add", frank["address"], "--name", "laptop")
    secret = next(line.split(": ", 1)[1] for line in added.splitlines() if line.startswith("App password (shown"))
    with_app_password = imap_login(server, frank["address"], secret)
    with_password = imap_login(server, frank["address"], password)
    listed = api.call("GET", APP_PASSWORDS, frank)[1]
    assert listed[0]["last_used"] is not None and listed[0]["last_ip"] == "127.0.0.1"
    assert api.call("DELETE", APP_PASSWORD, {**frank, "name": "laptop"})[0] == 204
    assert closed_at_once(server, with_app_password, lambda e: e.get("event") == "app_password_session_closed"
                  and e.get("account") == frank["address"] and e.get("app_password") == "laptop")
    assert with_password.noop()[0] == "OK", "the password's session stays"
    with_password.logout()
    with pytest.raises(imaplib.IMAP4.error):
        imap_login(server, frank["address"], secret)
