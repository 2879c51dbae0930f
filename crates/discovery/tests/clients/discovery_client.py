#!/usr/bin/env python3
"""A mail client's side of discovery, for crates/discovery/tests/documents.rs.

Fetches the documents over HTTPS from the test listener on 127.0.0.1 (SNI and the
certificate check use the virtual host's name, as a real client's would), follows
Thunderbird's lookup order, and validates every document against its published format:
Mozilla's config-v1.1 description (autoconfig), Microsoft's POX autodiscover response,
and Apple's property list (plistlib). Prints one JSON object with what it found; exits
non-zero with the reason when anything is invalid.

Usage: discovery_client.py PORT CA_PEM HOSTS EMAIL
  HOSTS: comma-separated names that "resolve" (to 127.0.0.1); any other name does not.
"""
import http.client
import json
import plistlib
import socket
import ssl
import sys
import urllib.parse
import xml.etree.ElementTree as ET

PORT = int(sys.argv[1])
CONTEXT = ssl.create_default_context(cafile=sys.argv[2])
RESOLVES = set(sys.argv[3].split(","))
EMAIL = sys.argv[4]
DOMAIN = EMAIL.rsplit("@", 1)[1]


class Unreachable(Exception):
    pass


class Loopback(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 for a name in RESOLVES, verified for that name."""

    def connect(self):
        if self.host not in RESOLVES:
            raise Unreachable(f"{self.host} does not resolve")
        sock = socket.create_connection(("127.0.0.1", PORT), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def fetch(scheme, host, path, method="GET", body=None):
    if scheme != "https":
        # The test has no plain-HTTP listener: the documents are never served without TLS.
        raise Unreachable("no plain HTTP")
    conn = Loopback(host, PORT, context=CONTEXT, timeout=10)
    headers = {"Content-Type": "text/xml"} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, resp.getheader("Content-Type"), data


def fail(why):
    print(json.dumps({"error": why}))
    sys.exit(1)


# --- Thunderbird's order (comm-central, mailnews/.../FetchConfig): the domain's own
# autoconfig host, then its .well-known URL, each over HTTPS and then HTTP; then the ISPDB
# and the MX (not served here).
def thunderbird_urls(domain, email):
    q = urllib.parse.urlencode({"emailaddress": email})
    for scheme in ("https", "http"):
        yield scheme, f"autoconfig.{domain}", f"/mail/config-v1.1.xml?{q}"
        yield scheme, domain, f"/.well-known/autoconfig/mail/config-v1.1.xml?{q}"


SOCKET_TYPES = {"plain", "SSL", "STARTTLS"}
AUTHS = {"password-cleartext", "password-encrypted", "NTLM", "GSSAPI", "client-IP-address",
         "TLS-client-cert", "OAuth2", "none"}
SERVER_CHILDREN = {"hostname", "port", "socketType", "authentication", "username", "password",
                   "pop3", "useGlobalPreferredServer"}


def validate_autoconfig(data):
    """Mozilla's config-v1.1 description (wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat)."""
    root = ET.fromstring(data)
    if root.tag != "clientConfig" or root.get("version") != "1.1":
        fail(f"root is {root.tag} version {root.get('version')}")
    providers = root.findall("emailProvider")
    if len(providers) != 1 or not providers[0].get("id"):
        fail("exactly one emailProvider with an id")
    p = providers[0]
    allowed = {"domain", "displayName", "displayShortName", "incomingServer", "outgoingServer",
               "documentation", "enable", "instructionsURL"}
    for child in p:
        if child.tag not in allowed:
            fail(f"unknown element emailProvider/{child.tag}")
    if not p.findall("domain") or not p.findall("incomingServer") or not p.findall("outgoingServer"):
        fail("domain, incomingServer and outgoingServer are required")
    servers = []
    for kind, types in (("incomingServer", {"imap", "pop3"}), ("outgoingServer", {"smtp"})):
        for s in p.findall(kind):
            if s.get("type") not in types:
                fail(f"{kind} type {s.get('type')}")
            for child in s:
                if child.tag not in SERVER_CHILDREN:
                    fail(f"unknown element {kind}/{child.tag}")
            for required in ("hostname", "port", "socketType", "authentication", "username"):
                if s.find(required) is None:
                    fail(f"{kind} lacks {required}")
            port = int(s.findtext("port"))
            if not 0 < port < 65536:
                fail(f"port {port}")
            if s.findtext("socketType") not in SOCKET_TYPES:
                fail(f"socketType {s.findtext('socketType')}")
            for a in s.findall("authentication"):
                if a.text not in AUTHS:
                    fail(f"authentication {a.text}")
            servers.append({"kind": kind, "type": s.get("type"), "host": s.findtext("hostname"),
                            "port": port, "socket": s.findtext("socketType"),
                            "username": s.findtext("username")})
    return {"domains": [d.text for d in p.findall("domain")], "servers": servers}


def thunderbird(domain, email):
    tried = []
    for scheme, host, path in thunderbird_urls(domain, email):
        url = f"{scheme}://{host}{path}"
        try:
            status, ctype, data = fetch(scheme, host, path)
        except (Unreachable, OSError) as e:
            tried.append(f"{url}: {e}")
            continue
        if status != 200:
            tried.append(f"{url}: HTTP {status}")
            continue
        if not ctype or not ctype.split(";")[0].strip() in ("text/xml", "application/xml"):
            fail(f"{url}: content type {ctype}")
        return {"url": url, "tried": tried, "config": validate_autoconfig(data)}
    return {"url": None, "tried": tried}


NS_RESPONSE = "{http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006}"
NS_OUTLOOK = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"
PROTOCOL_CHILDREN = {"Type", "Server", "Port", "LoginName", "DomainRequired", "DomainName", "SPA",
                     "SSL", "AuthRequired", "Encryption", "UsePOPAuth", "SMTPLast", "TTL"}
ON_OFF = {"on", "off"}


def validate_autodiscover(data):
    """Microsoft's POX autodiscover response (Outlook "2006a" schema)."""
    root = ET.fromstring(data)
    if root.tag != NS_RESPONSE + "Autodiscover":
        fail(f"root {root.tag}")
    response = root.find(NS_OUTLOOK + "Response")
    if response is None:
        error = root.find(f"{NS_RESPONSE}Response/{NS_RESPONSE}Error")
        if error is None:
            fail("neither a settings Response nor an Error")
        return {"error": error.findtext(NS_RESPONSE + "ErrorCode")}
    account = response.find(NS_OUTLOOK + "Account")
    if account is None or account.findtext(NS_OUTLOOK + "AccountType") != "email" \
            or account.findtext(NS_OUTLOOK + "Action") != "settings":
        fail("Account with AccountType email and Action settings")
    protocols = []
    for p in account.findall(NS_OUTLOOK + "Protocol"):
        fields = {}
        for child in p:
            tag = child.tag.replace(NS_OUTLOOK, "")
            if tag not in PROTOCOL_CHILDREN:
                fail(f"unknown element Protocol/{tag}")
            fields[tag] = child.text
        if fields.get("Type") not in {"IMAP", "POP3", "SMTP"}:
            fail(f"Type {fields.get('Type')}")
        for flag in ("SSL", "SPA", "DomainRequired", "AuthRequired"):
            if flag in fields and fields[flag] not in ON_OFF:
                fail(f"{flag} {fields[flag]}")
        if "Encryption" in fields and fields["Encryption"] not in {"None", "SSL", "TLS", "Auto"}:
            fail(f"Encryption {fields['Encryption']}")
        int(fields["Port"])
        protocols.append(fields)
    if not protocols:
        fail("no Protocol")
    return {"protocols": protocols}


def autodiscover(host, email, schema):
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">'
        f"<Request><EMailAddress>{email}</EMailAddress>"
        f"<AcceptableResponseSchema>{schema}</AcceptableResponseSchema></Request></Autodiscover>"
    )
    status, ctype, data = fetch("https", host, "/autodiscover/autodiscover.xml", "POST", body.encode())
    if status != 200:
        return {"status": status}
    return {"status": status, "document": validate_autodiscover(data)}


def mobileconfig(host, email):
    q = urllib.parse.urlencode({"emailaddress": email})
    status, ctype, data = fetch("https", host, f"/mail.mobileconfig?{q}")
    if status != 200:
        return {"status": status}
    if ctype != "application/x-apple-aspen-config":
        fail(f"profile content type {ctype}")
    profile = plistlib.loads(data)
    if profile.get("PayloadType") != "Configuration" or profile.get("PayloadVersion") != 1:
        fail("not a configuration profile")
    for key in ("PayloadIdentifier", "PayloadUUID", "PayloadDisplayName"):
        if not isinstance(profile.get(key), str):
            fail(f"profile lacks {key}")
    (account,) = profile["PayloadContent"]
    if account.get("PayloadType") != "com.apple.mail.managed":
        fail("not a mail payload")
    secrets = [k for k in account if "Password" in k and k != "OutgoingPasswordSameAsIncomingPassword"]
    if secrets:
        fail(f"the profile carries a password: {secrets}")
    return {"status": status, "account": {k: v for k, v in account.items()}}


def mta_sts(domain):
    status, ctype, data = fetch("https", f"mta-sts.{domain}", "/.well-known/mta-sts.txt")
    if status != 200:
        return {"status": status}
    # RFC 8461 §3.2: key/value lines; version first.
    lines = data.decode().split("\r\n")
    pairs = [l.split(": ", 1) for l in lines if l]
    if pairs[0] != ["version", "STSv1"]:
        fail(f"policy starts with {pairs[0]}")
    return {"status": status, "content_type": ctype, "pairs": pairs}


print(json.dumps({
    "thunderbird": thunderbird(DOMAIN, EMAIL),
    "autodiscover": autodiscover(f"autodiscover.{DOMAIN}", EMAIL,
                                 "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"),
    "autodiscover_mobilesync": autodiscover(DOMAIN, EMAIL,
                                            "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"),
    "mobileconfig": mobileconfig(DOMAIN, EMAIL),
    "mta_sts": mta_sts(DOMAIN),
}))
