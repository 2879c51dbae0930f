#!/usr/bin/env python3
"""An independent DKIM/ARC signer and verifier for the tests (dkimpy: nobody here wrote it).

Commands (the message on stdin, the result on stdout):
  keygen rsa|ed25519 KEYFILE     write a private key to KEYFILE, print the DNS p= value
  sign KEYFILE DOMAIN SELECTOR rsa-sha256|ed25519-sha256
                                 print the message with a DKIM-Signature prepended
  arcsign KEYFILE DOMAIN SELECTOR SRV_ID
                                 print the message with an ARC set prepended (the message
                                 must carry an Authentication-Results of SRV_ID)
  verify DNS_PORT                verify every DKIM-Signature, keys read from the test DNS
                                 server on 127.0.0.1:DNS_PORT; print "pass" or "fail"
Needs: pip install dkimpy pynacl (dnspython comes with dkimpy); openssl for RSA keys.
"""
import base64
import subprocess
import sys

import dkim


def keygen(kind, keyfile):
    if kind == "rsa":
        pem = subprocess.run(["openssl", "genrsa", "2048"], check=True, capture_output=True).stdout
        der = subprocess.run(["openssl", "rsa", "-pubout", "-outform", "DER"], input=pem, check=True,
                             capture_output=True).stdout
        with open(keyfile, "wb") as f:
            f.write(pem)
        print(base64.b64encode(der).decode())
    elif kind == "ed25519":
        import nacl.signing
        key = nacl.signing.SigningKey.generate()
        with open(keyfile, "wb") as f:  # dkimpy's ed25519 key format: the base64 seed
            f.write(base64.b64encode(bytes(key)))
        print(base64.b64encode(bytes(key.verify_key)).decode())
    else:
        sys.exit(f"unknown key kind {kind}")


def dns_txt(port):
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = port
    resolver.lifetime = 5

    def get_txt(name, timeout=5):
        try:
            answer = resolver.resolve(name.decode(), "TXT")
        except Exception:
            return None
        return b"".join(b"".join(r.strings) for r in answer)

    return get_txt


def main():
    command, args = sys.argv[1], sys.argv[2:]
    if command == "keygen":
        keygen(*args)
        return
    message = sys.stdin.buffer.read()
    if command == "sign":
        keyfile, domain, selector, algorithm = args
        key = open(keyfile, "rb").read()
        header = dkim.sign(message, selector.encode(), domain.encode(), key,
                           signature_algorithm=algorithm.encode(),
                           include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
        sys.stdout.buffer.write(header + message)
    elif command == "arcsign":
        keyfile, domain, selector, srv_id = args
        key = open(keyfile, "rb").read()
        headers = dkim.arc_sign(message, selector.encode(), domain.encode(), key, srv_id.encode())
        sys.stdout.buffer.write(b"".join(headers) + message)
    elif command == "verify":
        ok = dkim.verify(message, dnsfunc=dns_txt(int(args[0])))
        print("pass" if ok else "fail")
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
