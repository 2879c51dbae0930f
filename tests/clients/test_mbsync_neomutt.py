"""mbsync (isync) and neomutt against Portcullis's IMAP4rev2 on the imaps listener.

mbsync keeps a local Maildir in two-way sync with a 200-message INBOX; neomutt runs in a
detached tmux session and is driven by keystrokes. Both get a HOME of their own in a temp dir
and trust exactly the certificate generated for the run.
"""
import concurrent.futures
import email
import email.policy
import imaplib
import os
import re
import ssl
import subprocess
import time
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime

from conftest import ALICE, BOB, PASSWORD, require


def context(server):
    ctx = ssl.create_default_context(cafile=str(server.cert))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def login(server, user=BOB):
    imap = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=context(server))
    imap.login(user, PASSWORD)
    return imap


def message(subject, body, message_id, date=None):
    msg = EmailMessage()
    msg["From"] = ALICE
    msg["To"] = BOB
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    if date is not None:
        msg["Date"] = format_datetime(date)
    msg.set_content(body)
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def append_all(server, raws, connections=8):
    """APPENDs raws to BOB's INBOX over a few connections (the store commits them in groups);
    returns the UID each one got (from APPENDUID, RFC 4315)."""
    def work(indices):
        got = {}
        with login(server) as imap:
            for i in indices:
                typ, data = imap.append("INBOX", None, None, raws[i])
                assert typ == "OK", data
                m = re.search(rb"\[APPENDUID \d+ (\d+)\]", data[0])
                assert m, f"no APPENDUID in {data}"
                got[i] = int(m.group(1))
        return got

    uids = {}
    with concurrent.futures.ThreadPoolExecutor(connections) as pool:
        for got in pool.map(work, [range(k, len(raws), connections) for k in range(connections)]):
            uids.update(got)
    assert len(set(uids.values())) == len(raws)
    return [uids[i] for i in range(len(raws))]


def client_env(home):
    """A minimal environment: the clients must never see the machine's HOME or XDG dirs."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TERM": "xterm-256color"}


# ---------------------------------------------------------------------------------------------
# mbsync


def mbsync_config(server, maildir):
    # isync 1.4 (Debian 12) spells it SSLType; 1.5 renamed it TLSType. Host is "localhost", not
    # 127.0.0.1: isync 1.4 matches the certificate's DNS names and CN only, never an IP SAN,
    # and the generated certificate names DNS:localhost.
    return (
        "IMAPAccount bob\n"
        "Host localhost\n"
        f"Port {server.ports['imaps']}\n"
        f"User {BOB}\n"
        f'Pass "{PASSWORD}"\n'
        "SSLType IMAPS\n"
        "SSLVersions TLSv1.2 TLSv1.3\n"
        "SystemCertificates no\n"
        f"CertificateFile {server.cert}\n"
        "Timeout 20\n"
        "\n"
        "IMAPStore bob-remote\n"
        "Account bob\n"
        "\n"
        "MaildirStore bob-local\n"
        f"Path {maildir}/\n"
        f"Inbox {maildir}/INBOX\n"
        "\n"
        "Channel bob\n"
        "Far :bob-remote:\n"
        "Near :bob-local:\n"
        "Patterns INBOX\n"
        "Sync All\n"
        "Create Both\n"
        "Expunge Both\n"
        "SyncState *\n"
    )


def mbsync(tmp_path, config, run):
    """Runs mbsync with the IMAP trace on (-Dn: protocol lines, no payloads, no password)."""
    out = subprocess.run([require("mbsync"), "-c", str(config), "-Dn", "bob"], cwd=tmp_path,
                         env=client_env(tmp_path / "home"), capture_output=True, text=True,
                         errors="replace", timeout=60)
    log = out.stdout + out.stderr
    (tmp_path / f"mbsync-run{run}.log").write_text(log)
    assert out.returncode == 0, f"mbsync run {run} exited {out.returncode}:\n{log[-20000:]}"
    return log


def maildir_messages(box):
    """Message-ID -> (path, flags, bytes) for every message in the Maildir box."""
    found = {}
    for sub in ("new", "cur"):
        for path in (box / sub).iterdir():
            raw = path.read_bytes()
            mid = email.message_from_bytes(raw, policy=email.policy.default)["Message-ID"]
            assert mid and mid not in found, f"{path}: Message-ID {mid!r} missing or twice"
            flags = path.name.rsplit(":2,", 1)[1] if ":2," in path.name else ""
            found[mid] = (path, flags, raw)
    return found


def set_maildir_flags(path, flags):
    """Moves a Maildir message to cur/ with exactly these info flags (what a MUA does)."""
    base = path.name.split(":2,", 1)[0]
    target = path.parent.parent / "cur" / f"{base}:2,{flags}"
    os.rename(path, target)
    return target


def uid_fetch_flags(imap, uid):
    typ, data = imap.uid("FETCH", str(uid), "(FLAGS)")
    assert typ == "OK", data
    data = [d for d in data if d is not None]
    if not data:
        return None
    m = re.search(rb"FLAGS \(([^)]*)\)", data[0] if isinstance(data[0], bytes) else data[0][0])
    return set(m.group(1).decode().split())


def server_state(imap):
    typ, data = imap.status("INBOX", "(MESSAGES UIDNEXT HIGHESTMODSEQ)")
    assert typ == "OK", data
    return data[0].decode()


def lf(raw):
    return raw.replace(b"\r\n", b"\n")


def without_tuid(raw):
    """mbsync marks each message it propagates with an X-TUID header of its own."""
    return re.sub(rb"(?m)^X-TUID: [^\r\n]*\r?\n", b"", raw, count=1)


def test_mbsync_two_way_sync_of_200_messages(server, tmp_path):
    require("mbsync")
    (tmp_path / "home").mkdir()
    maildir = tmp_path / "mail"
    maildir.mkdir()  # mbsync creates the boxes (Create Both), not the store's root
    config = tmp_path / "mbsyncrc"
    config.write_text(mbsync_config(server, maildir))

    count = 200
    mids = [f"<sync-{i}@example.test>" for i in range(count)]
    raws = [message(f"sync message {i}", f"Body of message {i}.\n" + f"line {i} " * 40 + "\n"
                    "\xfcmlaut and a final line\n", mids[i]) for i in range(count)]
    uids = append_all(server, raws)

    # Run 1: everything arrives, byte for byte (a Maildir stores LF line ends).
    started = time.time()
    log1 = mbsync(tmp_path, config, 1)
    first_sync = time.time() - started
    local = maildir_messages(maildir / "INBOX")
    assert set(local) == set(mids), \
        f"missing locally: {sorted(set(mids) - set(local))[:10]}\n{log1[-5000:]}"
    for i, mid in enumerate(mids):
        assert without_tuid(local[mid][2]) == lf(raws[i]), f"message {i} differs locally"

    # Local changes: flag and read one, delete one file, mark one trashed, write a new one.
    set_maildir_flags(local[mids[7]][0], "FS")
    os.unlink(local[mids[42]][0])
    set_maildir_flags(local[mids[99]][0], "ST")
    pushed_mid = "<pushed-from-maildir@example.test>"
    pushed = lf(message("written locally", "Pushed by mbsync.\n", pushed_mid))
    (maildir / "INBOX" / "new" / f"{int(time.time())}.portcullis-test.localhost").write_bytes(pushed)

    # Server changes meanwhile: a new message and a flag.
    with login(server) as imap:
        imap.select("INBOX")
        typ, data = imap.uid("STORE", str(uids[3]), "+FLAGS.SILENT", r"(\Answered)")
        assert typ == "OK", data
        arrived_mid = "<arrived-on-server@example.test>"
        arrived = message("arrived meanwhile", "Appended on the server.\n", arrived_mid)
        typ, data = imap.append("INBOX", r"(\Flagged)", None, arrived)
        assert typ == "OK", data

    # Run 2: both directions propagate.
    log2 = mbsync(tmp_path, config, 2)
    with login(server) as imap:
        imap.select("INBOX")
        flags7 = uid_fetch_flags(imap, uids[7])
        assert flags7 == {r"\Flagged", r"\Seen"}, (flags7, log2[-5000:])
        for i in (42, 99):
            assert uid_fetch_flags(imap, uids[i]) is None, \
                f"message {i} (UID {uids[i]}) is still on the server\n{log2[-5000:]}"
        typ, data = imap.uid("SEARCH", "ALL")
        on_server = {int(u) for u in data[0].split()}
        assert uids[42] not in on_server and uids[99] not in on_server
        assert uid_fetch_flags(imap, uids[3]) == {r"\Answered"}
        typ, data = imap.uid("SEARCH", "HEADER", "Message-ID", pushed_mid)
        [pushed_uid] = data[0].split()
        typ, data = imap.uid("FETCH", pushed_uid, "(BODY.PEEK[])")
        assert typ == "OK" and without_tuid(lf(data[0][1])) == pushed, data
        state = server_state(imap)
        assert re.search(rf"MESSAGES {count - 2 + 2}\b", state), state
    local = maildir_messages(maildir / "INBOX")
    expected = (set(mids) - {mids[42], mids[99]}) | {pushed_mid, arrived_mid}
    assert set(local) == expected, (sorted(set(local) ^ expected), log2[-5000:])
    assert without_tuid(local[arrived_mid][2]) == lf(arrived)
    assert "F" in local[arrived_mid][1], local[arrived_mid][0]
    assert "R" in local[mids[3]][1], local[mids[3]][0]
    assert local[mids[7]][1] == "FS"

    # Run 3: nothing changed, so nothing is written on either side.
    before = (sorted(p.name for p in (maildir / "INBOX" / "cur").iterdir()),
              sorted(p.name for p in (maildir / "INBOX" / "new").iterdir()))
    log3 = mbsync(tmp_path, config, 3)
    writes = re.findall(r">>> \d+ (?:UID )?(?:STORE|APPEND|EXPUNGE|COPY|MOVE)\b.*", log3)
    assert not writes, f"a no-op sync changed the server: {writes}\n{log3[-5000:]}"
    after = (sorted(p.name for p in (maildir / "INBOX" / "cur").iterdir()),
             sorted(p.name for p in (maildir / "INBOX" / "new").iterdir()))
    assert before == after
    with login(server) as imap:
        assert server_state(imap) == state
    print(f"first sync of {count} messages: {first_sync:.1f}s")


# ---------------------------------------------------------------------------------------------
# neomutt in tmux


class Tmux:
    """A private tmux server (its own socket in the temp dir) running one detached session."""

    def __init__(self, tmp_path, env):
        self.base = [require("tmux"), "-S", str(tmp_path / "tmux.sock")]
        self.env = env
        self.started = False

    def run(self, *args):
        return subprocess.run(self.base + list(args), env=self.env, capture_output=True,
                              text=True, timeout=10)

    def start(self, command):
        out = self.run("-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", "200", "-y", "50", command)
        assert out.returncode == 0, out.stderr
        self.started = True

    def screen(self):
        out = self.run("capture-pane", "-p", "-t", "t")
        return out.stdout if out.returncode == 0 else f"<capture-pane failed: {out.stderr}>"

    def keys(self, *keys):
        out = self.run("send-keys", "-t", "t", *keys)
        assert out.returncode == 0, out.stderr

    def wait(self, what, pred, timeout=20):
        deadline = time.time() + timeout
        while True:
            screen = self.screen()
            if pred(screen):
                return screen
            if time.time() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen:\n{screen}")
            time.sleep(0.1)

    def kill(self):
        if self.started:
            self.run("kill-server")


SUBJECTS = ["Apple pie recipe", "Budget meeting notes", "Cycling trip photos", "Dentist appointment"]


def status_line(screen):
    lines = [line for line in screen.splitlines() if "NeoMutt: " in line]
    return lines[-1] if lines else ""


def index_rows(screen):
    """The index's lines (they start with the message number) that show one of SUBJECTS."""
    return [line for line in screen.splitlines()
            if re.match(r"\s*\d+ ", line) and any(s in line for s in SUBJECTS)]


def neomutt_commands(log):
    """The IMAP commands from neomutt's debug log (-l FILE writes FILE0), credentials left out."""
    try:
        text = (log.parent / (log.name + "0")).read_text(errors="replace")
    except OSError as e:
        return f"<no log: {e}>"
    lines = [line for line in text.splitlines() if "mutt_socket_write_d()" in line or "<M>" in line
             or (line and not line.startswith("["))]
    return "\n".join("<AUTHENTICATE elided>" if "AUTHENTICATE" in line else line
                     for line in lines[-200:])


def test_neomutt_in_tmux_reads_and_deletes_a_message(server, tmp_path):
    require("neomutt")
    require("tmux")
    home = tmp_path / "home"
    home.mkdir()
    # Distinct dates, so `sort = date` gives the order of SUBJECTS.
    t0 = datetime(2024, 3, 1, 9, 0, tzinfo=timezone.utc)
    raws = [message(s, f"The body of {s.lower()}, for Bob.\n", f"<tui-{n}@example.test>",
                    t0 + timedelta(hours=n)) for n, s in enumerate(SUBJECTS)]
    uids = append_all(server, raws, connections=1)

    muttrc = home / "muttrc"
    muttrc.write_text(
        f'set folder = "imaps://{BOB.replace("@", "%40")}@127.0.0.1:{server.ports["imaps"]}/"\n'
        f'set imap_pass = "{PASSWORD}"\n'
        'set spoolfile = "+INBOX"\n'
        # Debian's neomutt is built with GnuTLS: trust the run's certificate and nothing else.
        f'set ssl_ca_certificates_file = "{server.cert}"\n'
        f'set certificate_file = "{home}/certificates"\n'
        "set ssl_force_tls = yes\n"
        "set ssl_verify_host = yes\n"
        "set imap_check_subscribed = no\n"
        "set mail_check_stats = no\n"
        "set imap_passive = yes\n"
        "set confirmappend = no\n"
        "set quit = yes\n"
        "set delete = yes\n"
        "set move = no\n"
        "set sort = date\n"
        "set mark_old = no\n"
        "unset wait_key\n"
        'set header_cache = ""\n'
        'set message_cachedir = ""\n'
    )

    log = tmp_path / "neomutt.log"
    tmux = Tmux(tmp_path, client_env(home))
    try:
        # -n: no system-wide neomuttrc. The shell keeps the pane (and the exit status) around.
        tmux.start(f"{require('neomutt')} -n -d 2 -l {log} -F {muttrc}; "
                   "echo NEOMUTT-EXITED=$?; sleep 600")
        screen = tmux.wait("the index with all subjects",
                           lambda s: all(subj in s for subj in SUBJECTS) and "Msgs:4" in status_line(s))
        assert "Certificate" not in screen

        # Read the first message (the cursor starts on it), back to the index (i).
        tmux.keys("Enter")
        screen = tmux.wait("the pager with the first message",
                           lambda s: "The body of apple pie recipe, for Bob." in s)
        assert "Subject: Apple pie recipe" in screen, screen
        tmux.keys("i")
        tmux.wait("the index again", lambda s: "Msgs:4" in status_line(s) and len(index_rows(s)) == 4)

        # Read the second one, back to the index, delete it (d), then sync the mailbox ($).
        tmux.keys("j", "Enter")
        screen = tmux.wait("the pager with the second message",
                           lambda s: "The body of budget meeting notes, for Bob." in s)
        assert "Subject: Budget meeting notes" in screen, screen
        tmux.keys("i")
        tmux.wait("the index again", lambda s: "Msgs:4" in status_line(s) and len(index_rows(s)) == 4)
        tmux.keys("d")
        tmux.wait("the message marked deleted",
                  lambda s: "Del:1" in status_line(s)
                  and any("Budget meeting notes" in r and re.search(r"\sD\s", r) for r in index_rows(s)))
        tmux.keys("$")
        tmux.wait("the synced index without the deleted message",
                  lambda s: "Msgs:3" in status_line(s) and "Budget meeting notes" not in s
                  and len(index_rows(s)) == 3)

        def check_server():
            with login(server) as imap:
                imap.select("INBOX")
                typ, data = imap.uid("SEARCH", "ALL")
                left = sorted(int(u) for u in data[0].split())
                assert left == [uids[0], uids[2], uids[3]], (left, uids)
                assert uid_fetch_flags(imap, uids[0]) == {r"\Seen"}, "the message read is \\Seen"
                for n in (2, 3):
                    assert uid_fetch_flags(imap, uids[n]) == set(), f"{SUBJECTS[n]} changed"
                typ, data = imap.status("INBOX", "(MESSAGES)")
                assert b"MESSAGES 3" in data[0], data

        # The server agrees while neomutt is still connected ...
        check_server()

        # ... and after it quits (q).
        tmux.keys("q")
        screen = tmux.wait("neomutt to exit", lambda s: "NEOMUTT-EXITED=" in s)
        assert "NEOMUTT-EXITED=0" in screen, screen
        check_server()
    except BaseException:
        print(f"tmux screen at failure:\n{tmux.screen()}")
        print(f"neomutt's commands (-d 2):\n{neomutt_commands(log)}")
        raise
    finally:
        tmux.kill()
