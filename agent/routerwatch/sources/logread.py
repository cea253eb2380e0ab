"""The login watcher's source: follows the system log and yields LoginAttempt events.

config.log.source picks the stream:
  logread  run config.log.command ("logread -f") in a reader thread; when it dies, restart it
           with exponential back-off (capped at config.log.restart_max_seconds)
  file     follow config.log.path like `tail -F`: rotation (a new inode at the path) and
           truncation are handled; starts at the end of the file, or with once=True reads the
           whole file and stops. The path is used as given, not under config.root.
  stdin    read standard input until it ends

Where there is no logread (an ordinary Linux machine, a fixture tree) the source falls back to
the root's /var/log/messages, followed as a file, or to no log at all, and says so in one line.

The reader thread only cuts out the lines that may be about logins (each cut at
config.log.max_line_bytes; a substring test: "dropbear" or "luci: ", found in C by
LoginLineScanner, so other lines never become Python objects) and keeps them in a bounded queue
(config.log.queue_lines, oldest dropped and counted). Parsing and the per-PID correlation run in
drain(), on the agent's loop, so events come out in log order.

A line may be cut (logd caps messages at 1024 bytes, dropbear its own at 1023, this reader at
max_line_bytes). A cut line ends with whatever was in the middle, possibly client-chosen text such
as a LuCI user name ending in " from 203.0.113.9", so lines of UNTRUSTED_TAIL_BYTES or more are
used without their trailing address: dropbear lines then take the address of their PID's
connection line, LuCI ones count as failures from an unknown source. Such a line is still counted
when its end no longer parses at all, so overlong user names hide no failures.
"""
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections import deque

from ..parsers.login_line import DROPBEAR, parse_general, parse_usual
from ..parsers.syslog import parse_line
from ..events import LoginAttempt
from .login_sessions import LoginSessions

log = logging.getLogger("routerwatch")
_new_attempt = tuple.__new__     # a LoginAttempt without its Python-level __new__ (per line)

UNTRUSTED_TAIL_BYTES = 1000   # below logd's 1024-byte message cap with room for the header
READ_CHUNK = 65536
FILE_POLL_SECONDS = 0.25      # how often a followed file is checked when nothing new arrived
RESTART_MIN_SECONDS = 0.5     # first back-off before restarting a dead logread
MISSING_LOG_REWARN_SECONDS = 60.0   # a followed file still missing this long is reported again
STABLE_SECONDS = 5.0          # a logread -f that has run this long is following the log again


def next_backoff(previous, cap):
    """Seconds to wait before the next restart: doubling from RESTART_MIN_SECONDS up to cap."""
    if previous <= 0:
        return min(RESTART_MIN_SECONDS, cap)
    return min(previous * 2, cap)


def fallback_log(config):
    """(mode, path, note) for a logread source on a machine without logread: the root's
    /var/log/messages when there is one, else nothing; note is the one line that says so.
    (mode, path, None) when logread is there or another source was chosen."""
    log_config = config.log
    if log_config.source != "logread":
        return log_config.source, log_config.path, None
    argv = shlex.split(log_config.command) or [""]
    if shutil.which(argv[0]):
        return "logread", "", None
    messages = os.path.join(config.root, "var", "log", "messages")
    if os.path.isfile(messages):
        return "file", messages, ("no %s here (not OpenWrt?): reading login events from %s "
                                  "instead" % (argv[0], messages))
    return "none", "", ("no %s and no %s here (not OpenWrt?): no login events are read; "
                        "--log-file FILE names a log" % (argv[0], messages))


def reference_of(when):
    """(year, month) that yearless stamps are read against, from a time passed in as data."""
    local = time.localtime(when)
    return local.tm_year, local.tm_mon


class LineSplitter:
    """Bytes in, lines out (without the newline), each cut at `cap` bytes; the rest of an
    overlong line is skipped without being stored, so a 10 MB line costs `cap` bytes."""

    __slots__ = ("cap", "_buf", "_skipping", "cut")

    def __init__(self, cap):
        self.cap = cap
        self._buf = bytearray()
        self._skipping = False
        self.cut = 0

    def reset(self):
        self._buf.clear()
        self._skipping = False

    def feed(self, data):
        # split in C; Python looks at the first and last pieces and at overlong lines only
        cap, buf = self.cap, self._buf
        lines = data.split(b"\n")
        tail = lines.pop()                # after the last newline: the next line's beginning
        if lines:
            if self._skipping:
                del lines[0]              # the end of an overlong line already cut
                self._skipping = False
            elif buf:
                buf += lines[0][:cap - len(buf) + 1]
                lines[0] = bytes(buf)
                buf.clear()
            if lines and max(map(len, lines)) > cap:
                cut = [line for line in lines if len(line) > cap]
                self.cut += len(cut)
                lines = [line[:cap] for line in lines]
        if not self._skipping and tail:
            room = cap - len(buf)
            if len(tail) > room:
                buf += tail[:room]
                lines.append(bytes(buf))
                buf.clear()
                self.cut += 1
                self._skipping = True
            else:
                buf += tail
        return lines

    def rest(self):
        """A last line without a newline (at the end of a file read once)."""
        if self._buf and not self._skipping:
            line = bytes(self._buf)
            self._buf.clear()
            return [line]
        return []


class LoginLineScanner:
    """Bytes in, the lines that may be about logins out: exactly the lines a LineSplitter of the
    same cap gives that contain "dropbear" or "luci: " (the cheap test before any regex), in
    order, without making a bytes object of any other line. Between the first and the last
    newline of a block the words are found in C (bytes.find) and only their lines are cut out;
    the block's two ends, where a line begun in one block ends in the next, go through the
    LineSplitter. `lines` counts every line; `cut` the candidates that reached the cap (cut
    there, or exactly that long): other lines are never looked at, so their length is unknown."""

    __slots__ = ("cap", "lines", "cut", "_splitter")

    def __init__(self, cap):
        self.cap = cap
        self.lines = 0
        self.cut = 0
        self._splitter = LineSplitter(cap)

    def reset(self):
        """Forget a line begun in the last block (the stream restarted or was truncated)."""
        self._splitter.reset()

    def feed(self, data):
        first = data.find(b"\n")
        if first < 0:
            return self._candidates(self._splitter.feed(data))
        last = data.rfind(b"\n", first)
        out = self._candidates(self._splitter.feed(data[:first + 1]))
        if last > first:
            self.lines += data.count(b"\n", first + 1, last + 1)
            self._scan(data, first + 1, last + 1, out)
        out.extend(self._candidates(self._splitter.feed(data[last + 1:])))
        return out

    def rest(self):
        """A last line without a newline (at the end of a file read once), if a candidate."""
        return self._candidates(self._splitter.rest())

    def _candidates(self, lines):
        self.lines += len(lines)
        out = [raw for raw in lines if b"dropbear" in raw or b"luci: " in raw]
        cap = self.cap
        for raw in out:
            if len(raw) >= cap:
                self.cut += 1
        return out

    def _scan(self, data, pos, end, out):
        """Append the candidate lines of data[pos:end], whole lines ending in a newline."""
        find, rfind, cap = data.find, data.rfind, self.cap
        dropbear = find(b"dropbear", pos, end)
        luci = find(b"luci: ", pos, end)
        while dropbear >= 0 or luci >= 0:
            hit = dropbear if luci < 0 or 0 <= dropbear < luci else luci
            start = rfind(b"\n", pos, hit) + 1 or pos
            stop = find(b"\n", hit, end)
            if stop - start >= cap:
                raw = data[start:start + cap]       # cut as the splitter cuts: the word may be gone
                if b"dropbear" in raw or b"luci: " in raw:
                    out.append(raw)
                    self.cut += 1
            else:
                out.append(data[start:stop])
            pos = stop + 1
            if 0 <= dropbear < pos:
                dropbear = find(b"dropbear", pos, end)
            if 0 <= luci < pos:
                luci = find(b"luci: ", pos, end)


class LoginLines:
    """Lines -> LoginAttempt events: syslog header, dropbear/LuCI message, per-PID correlation."""

    def __init__(self, max_sessions=1024):
        self.sessions = LoginSessions(max_sessions)
        self.recognised = 0
        self.untrusted = 0

    def feed(self, raw, reference):
        """Events completed by one raw line (bytes, no newline); reference = (year, month)."""
        if b"dropbear" not in raw and b"luci: " not in raw:
            return ()
        return self.feed_candidate(raw, reference)

    def feed_candidate(self, raw, reference):
        """feed() of a login candidate (a line with "dropbear" or "luci: ", tested already)."""
        return self.feed_block((raw,), reference)

    def feed_block(self, raws, reference, unrecognised=None):
        """The events completed by login candidates (LoginLineScanner's), in order, in one list (one
        call per block, not per line: under attack every second line is one). The lines no
        pattern recognises are appended to `unrecognised` when a list is given."""
        out = []
        recognised = 0
        feed_session = self.sessions.feed
        for raw in raws:
            # undecodable bytes stay what they were (the runtime shows them as \xNN on the wire)
            line = raw.decode("utf-8", "surrogateescape")
            if raw[-1] == 13:     # "\r" (a candidate line is never empty)
                line = line[:-1]
            untrusted = len(raw) >= UNTRUSTED_TAIL_BYTES
            # logread's usual shape the quick way; every other shape piece by piece
            fields = parse_usual(line)
            if fields is None:
                fields = parse_general(line, reference[0], reference[1], untrusted)
                if fields is None:
                    if unrecognised is not None:
                        unrecognised.append(raw)
                    continue
            when, pid, service, parsed = fields
            recognised += 1
            if service == DROPBEAR:
                if untrusted and parsed.ip is not None:
                    self.untrusted += 1
                    parsed = parsed._replace(ip=None, port=None)
                events = feed_session(when, pid, parsed)
                if events:
                    out.extend(events)
                continue
            ip = parsed.ip
            if untrusted and ip is not None:
                self.untrusted += 1
                ip = None
            out.append(_new_attempt(LoginAttempt, (when, "luci", parsed.outcome, "password",
                                                   parsed.user, ip, None, pid, 1)))
        self.recognised += recognised
        return out

    def flush(self):
        return self.sessions.flush()


# words of a dropbear or LuCI message about logging in; such a message no pattern recognises is
# a format left behind (a new release, an old one), which check-log counts and shows
_LOGIN_WORDS = re.compile(r"password|auth|login|user|attempt|pubkey|reject", re.I)
UNPARSED_SAMPLES = 5


class LineTally:
    """What check-log says of a log besides its events, as fail2ban-regex does: lines read,
    lines recognised, and the dropbear/LuCI lines about logins that no pattern recognised
    (counted, the first few kept as samples)."""

    def __init__(self):
        self.lines = 0
        self.unparsed = 0
        self.unparsed_samples = []

    def not_recognised(self, raw, reference):
        record = parse_line(raw.decode("utf-8", "replace").rstrip("\r"), *reference)
        if record is None or record.tag not in ("dropbear", "luci") and \
                not record.message.startswith("luci: "):
            return
        if _LOGIN_WORDS.search(record.message):
            self.unparsed += 1
            if len(self.unparsed_samples) < UNPARSED_SAMPLES:
                self.unparsed_samples.append(record.message[:200])


def iter_login_attempts(handle, max_line_bytes=2048, tally=None):
    """Every LoginAttempt in a binary file (check-log), each yielded as soon as the block of
    lines that completes it was read. Yearless stamps are read against the file's modification
    time; lines still waiting for an address at the end come out without one. A LineTally, if
    given, counts the lines and keeps what looked like a login line but was not recognised."""
    for events in iter_login_event_blocks(handle, max_line_bytes, tally):
        yield from events


def iter_login_event_blocks(handle, max_line_bytes=2048, tally=None):
    """iter_login_attempts() a list at a time: the events of each block read."""
    try:
        reference = reference_of(os.fstat(handle.fileno()).st_mtime)
    except (OSError, AttributeError, ValueError):
        reference = reference_of(time.time())
    lines = LoginLines()
    feed = lines.feed_block
    scanner = LoginLineScanner(max_line_bytes)
    unrecognised = [] if tally is not None else None
    read = handle.read
    while True:
        data = read(READ_CHUNK)
        events = feed(scanner.feed(data) if data else scanner.rest(), reference, unrecognised)
        if events:
            yield events
        if unrecognised:
            for raw in unrecognised:
                tally.not_recognised(raw, reference)
            unrecognised.clear()
        if not data:
            break
    if tally is not None:
        tally.lines = scanner.lines
    events = lines.flush()
    if events:
        yield events


class LogSource:
    """A stream source (see runtime.py): drain(now, limit), counters(), drops(), close()."""

    @property
    def unfinished(self):
        """True while a log read once (--once) still has lines to hand out."""
        return self.once and not self.exhausted

    def __init__(self, config, once=False):
        self.config = config
        self.log_config = config.log
        self.mode, self.path, note = fallback_log(config)
        if note:
            log.warning("%s", note)
        self.once = once
        self.exhausted = False          # once=True: everything was read
        self._queue = deque(maxlen=config.log.queue_lines)
        # the reader thread makes bytes objects of login candidates only, not of every line
        self._scanner = LoginLineScanner(config.log.max_line_bytes)
        self._lines = LoginLines()
        self._stop = threading.Event()
        self._thread = None
        self._proc = None
        self._handle = None
        self.lines_read = 0
        self.queue_dropped = 0
        self.waker = None               # set by the runtime: a threading.Event that wakes its loop
        self.restarts = 0
        self.last_line_at = time.monotonic()   # when the stream last gave a line (health)
        self.truncations = 0
        self.rotations = 0
        self._failure = None            # why the stream is not being followed (agent.degraded)
        self._started_at = None         # monotonic time the current logread -f started
        if self.mode == "none":
            self.exhausted = True
        elif once:
            self._handle = self._open_once()
        else:
            if self.mode == "file":
                # "the end" is where the file stands now, not whenever the thread gets to run
                self._handle = self._open_at_end(self.path)
            target = {"logread": self._follow_command, "file": self._follow_file,
                      "stdin": self._follow_stdin}[self.mode]
            self._thread = threading.Thread(target=target, name="routerwatch-log", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ the loop's side
    def drain(self, now, limit):
        reference = reference_of(now)
        feed = self._lines.feed_block   # _push and _read_once kept only candidates
        if self.once:
            out = feed(self._read_once(limit), reference)
            if self.exhausted:
                out.extend(self._lines.flush())
            return out
        queue = self._queue
        popleft = queue.popleft
        return feed([popleft() for _ in range(min(limit, len(queue)))], reference)

    @property
    def failure(self):
        """None while the log is being followed, else why not: logread keeps exiting (logd
        stopped), it cannot be run, the followed file cannot be opened. Standard input ending
        is not a failure: it is how a pipe or a test ends."""
        failure = self._failure
        if failure is not None and self._started_at is not None and self._proc is not None \
                and self._proc.poll() is None \
                and time.monotonic() - self._started_at >= STABLE_SECONDS:
            self._failure = failure = None
        return failure

    def counters(self):
        return {"log_lines": self.lines_read, "log_lines_recognised": self._lines.recognised,
                "log_lines_untrusted_tail": self._lines.untrusted, "log_restarts": self.restarts}

    def drops(self):
        return {"log_queue": self.queue_dropped, "log_lines_cut": self._scanner.cut,
                "login_sessions": self._lines.sessions.evicted,
                "login_pending": self._lines.sessions.pending_dropped}

    def health_problem(self, quiet_seconds):
        """Why the followed log may not be watched right now, or "" (the watcher's health)."""
        if self.once:
            return ""
        if self.mode == "none":
            return "no log is followed (no logread and no log file)"
        if not self._thread.is_alive():
            return "the log stream ended"
        if self.mode == "logread" and (self._proc is None or self._proc.poll() is not None):
            return "%s is not running (%d restarts)" % (self.log_config.command, self.restarts)
        quiet = time.monotonic() - self.last_line_at
        if quiet > quiet_seconds:
            return "no log line for %d s" % quiet
        return ""

    def close(self):
        self._stop.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        if self._handle is not None and self._handle is not sys.stdin.buffer:
            self._handle.close()
            self._handle = None

    # ------------------------------------------------------------------ once
    def _command(self):
        return shlex.split(self.log_config.command)

    def _open_once(self):
        if self.mode == "file":
            return open(self.path, "rb")
        if self.mode == "stdin":
            return sys.stdin.buffer
        # logread without -f prints what the ring buffer holds and exits
        argv = [arg for arg in self._command() if arg != "-f"]
        self._proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, close_fds=True)
        return self._proc.stdout

    def _read_once(self, limit):
        lines = []
        handle = self._handle
        scanner = self._scanner
        while handle is not None and len(lines) < limit:
            data = handle.read1(READ_CHUNK) if hasattr(handle, "read1") else handle.read(READ_CHUNK)
            if not data:
                lines.extend(scanner.rest())
                self.exhausted = True
                if handle is not sys.stdin.buffer:
                    handle.close()
                if self._proc is not None:
                    self._proc.wait()
                self._handle = handle = None
                break
            lines.extend(scanner.feed(data))
        self.lines_read = scanner.lines
        return lines

    # ------------------------------------------------------------------ reader threads
    def _push(self, candidates):
        """Queue the login candidates the scanner cut out of what was just read."""
        scanner = self._scanner
        if scanner.lines != self.lines_read:         # any line at all: the stream is alive
            self.last_line_at = time.monotonic()
            self.lines_read = scanner.lines
        if not candidates:
            return
        queue = self._queue
        maxlen = queue.maxlen
        for raw in candidates:
            if len(queue) >= maxlen:
                self.queue_dropped += 1
            queue.append(raw)
        if self.waker is not None:
            self.waker.set()    # a login line should not wait for the loop's next pass

    def _follow_command(self):
        argv = self._command()
        delay = 0.0
        cap = self.log_config.restart_max_seconds
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                              stdin=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL, close_fds=True)
            except OSError as exc:
                log.warning("cannot run %s: %s", self.log_config.command, exc)
                self._failure = "cannot run %s: %s" % (self.log_config.command,
                                                       exc.strerror or exc)
            else:
                self._started_at = started
                self._pump(self._proc.stdout.fileno())
                self._proc.stdout.close()
                status = self._proc.wait()
                self._started_at = None
                if not self._stop.is_set():
                    self._failure = "%s ended (exit status %s)" % (self.log_config.command,
                                                                  status)
            self._scanner.reset()
            if self._stop.is_set():
                break
            if time.monotonic() - started > cap:
                delay = 0.0      # it ran for a good while: a restart, not a crash loop
            delay = next_backoff(delay, cap)
            self.restarts += 1
            log.warning("%s ended; restarting in %.1f s", self.log_config.command, delay)
            self._stop.wait(delay)

    def _follow_stdin(self):
        self._pump(sys.stdin.fileno())
        self._push(self._scanner.rest())

    def _pump(self, fd):
        """Feed what a stream (logread -f's stdout, stdin) gives to the splitter until it ends,
        fails, or the source is closed."""
        while not self._stop.is_set():
            try:
                data = os.read(fd, READ_CHUNK)
            except OSError:
                return
            if not data:
                return
            self._failure = None      # lines arrive: whatever failed before, it reads again
            self._push(self._scanner.feed(data))

    @staticmethod
    def _open_at_end(path):
        try:
            handle = open(path, "rb", buffering=0)
        except OSError:
            return None       # not there yet: it is read from its start when it appears
        handle.seek(0, os.SEEK_END)
        return handle

    def _follow_file(self):
        path = self.path
        handle, self._handle = self._handle, None
        identity = None
        position = 0
        if handle is not None:
            st = os.fstat(handle.fileno())
            identity = (st.st_dev, st.st_ino)
            position = handle.tell()
        missing = _MissingFileWarnings(path)
        while not self._stop.is_set():
            if handle is None:
                try:
                    handle = open(path, "rb", buffering=0)
                    st = os.fstat(handle.fileno())
                    identity = (st.st_dev, st.st_ino)
                    position = 0
                    self._failure = None
                except OSError as exc:
                    self._failure = "cannot open %s: %s" % (path, exc.strerror or exc)
                    handle = None
                    missing.still_missing(exc, time.monotonic())
                    self._stop.wait(FILE_POLL_SECONDS)
                    continue
                missing.appeared()
            data = handle.read(READ_CHUNK)
            if data:
                position += len(data)
                self._push(self._scanner.feed(data))
                continue
            try:
                st = os.stat(path)
            except OSError:
                st = None     # moved away and not yet re-created: keep reading the old one
            if st is not None and (st.st_dev, st.st_ino) != identity:
                # rotated: take what was written to the old file since, then the new one from 0
                while True:
                    data = handle.read(READ_CHUNK)
                    if not data:
                        break
                    self._push(self._scanner.feed(data))
                self._push(self._scanner.rest())
                handle.close()
                handle = None
                self.rotations += 1
                continue
            if st is not None and st.st_size < position:
                handle.seek(0)     # truncated in place (copytruncate, "> file")
                position = 0
                self._scanner.reset()
                self.truncations += 1
                continue
            self._stop.wait(FILE_POLL_SECONDS)
        if handle is not None:
            handle.close()


class _MissingFileWarnings:
    """A followed log file that is not there (a typo in --log-file, a syslog not started yet)
    is said at once and once more if it is still missing a minute later, not every poll."""

    def __init__(self, path):
        self.path = path
        self.first = None        # monotonic time of the first warning
        self.warned = 0

    def still_missing(self, exc, now):
        if self.warned == 0:
            self.first = now
            log.warning("log file %s: %s; no login events until it appears", self.path,
                        exc.strerror or exc)
            self.warned = 1
        elif self.warned == 1 and now - self.first >= MISSING_LOG_REWARN_SECONDS:
            log.warning("log file %s still missing after %d s (%s); waiting for it", self.path,
                        now - self.first, exc.strerror or exc)
            self.warned = 2

    def appeared(self):
        if self.warned:
            log.info("log file %s appeared; following it", self.path)
        self.first, self.warned = None, 0
