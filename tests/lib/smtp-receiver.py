#!/usr/bin/python3
# A real SMTP server for the alert tests (aiosmtpd, Debian's
# python3-aiosmtpd): STARTTLS offered and required with the given
# certificate; every message accepted is appended to OUT as one JSON line
# {"mail_from", "rcpt_tos", "data", "tls", "login"}. With USER and PASS, AUTH
# (offered after STARTTLS only) accepts that login and nothing else. Prints
# "READY <port>" when it listens.  usage: smtp-receiver.py PORT CERT KEY OUT [USER PASS]
import json
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Recorder:
    def __init__(self, out):
        self.out = out

    async def handle_DATA(self, server, session, envelope):
        with open(self.out, "a", encoding="utf-8") as f:
            f.write(json.dumps({
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "data": envelope.content.decode("utf-8", "replace"),
                "tls": session.ssl is not None,
                "login": session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None,
            }) + "\n")
        return "250 Message accepted for delivery"


def main():
    port, cert, key, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    kw = {}
    if len(sys.argv) > 6:
        user, password = sys.argv[5].encode(), sys.argv[6].encode()

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and auth_data.login == user and auth_data.password == password
            return AuthResult(success=ok, handled=False, auth_data=auth_data)

        kw = {"authenticator": authenticator}
    c = Controller(Recorder(out), hostname="127.0.0.1", port=port, tls_context=ctx, require_starttls=True, **kw)
    c.start()
    print(f"READY {c.port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        c.stop()


if __name__ == "__main__":
    main()
