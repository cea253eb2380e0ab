"""The bytes of /proc/<pid>/stat, status and cmdline -> what the process watcher needs.

    stat     "<pid> (<comm>) <state> <ppid> ... <starttime> ... <arg_start> <arg_end> <env_start>
             <env_end> <exit_code>": fields 1-52 (proc(5)); comm may hold spaces and ")", so it
             ends at the LAST ")"
    status   "Uid:\t<real>\t<effective>\t<saved>\t<fs>" among other lines
    cmdline  the arguments, each ended by NUL (a process may rewrite it: then often one string)

Every string is the process's own choice (comm and argv are set by the program), so they are
taken as bytes, decoded with undecodable bytes kept as surrogates (the wire escapes them) and
capped. Malformed input gives None, never an exception.
"""
import re
from dataclasses import dataclass
from typing import Optional, Tuple

MAX_NAME_CHARS = 64          # the kernel's comm is 15 bytes; a future kernel may differ
# pid, then comm up to the last ")" (comm may contain ")" itself), then the numeric fields
# (fields 4-22 are required; 52 today, a few more allowed for kernels to come)
STAT_RE = re.compile(
    rb"\A([0-9]{1,10}) \((.{0,256})\) ([A-Za-z])((?: -?[0-9]{1,20}){19,64})\n?\Z", re.S)
FLAGS_FIELD = 9              # the kernel's PF_* flags of the task (1-based)
PF_KTHREAD = 0x00200000      # include/linux/sched.h: a kernel thread, which never runs a program
STARTTIME_FIELD = 22         # clock ticks after boot when the process started (1-based)
EXEC_FIELDS = (48, 52)       # arg_start, arg_end, env_start, env_end: another program, others


@dataclass(frozen=True, slots=True)
class PidStat:
    name: str                      # comm, as the kernel keeps it (15 bytes at most there)
    ppid: int
    start_ticks: int               # a pid reused by another process has another start time
    # where argv/env lie in memory: exec() moves them (ASLR); () on kernels before 3.5
    image: Tuple[int, ...]
    kernel_thread: bool = False


def decode(data):
    """Router bytes as text, undecodable bytes kept (as lone surrogates) for the wire to escape."""
    return data.decode("utf-8", "surrogateescape")


def parse_stat(data: bytes) -> Optional[PidStat]:
    match = STAT_RE.match(data)
    if match is None:
        return None
    # fields[0] is field 4 (ppid); field n is fields[n - 4]; the pattern made them numbers
    fields = match.group(4).split()
    ppid, start = int(fields[0]), int(fields[STARTTIME_FIELD - 4])
    image = tuple(map(int, fields[EXEC_FIELDS[0] - 4:EXEC_FIELDS[1] - 4]))
    if ppid < 0 or start < 0:
        return None
    kernel_thread = bool(int(fields[FLAGS_FIELD - 4]) & PF_KTHREAD)
    return PidStat(name=decode(match.group(2))[:MAX_NAME_CHARS], ppid=ppid, start_ticks=start,
                   image=image, kernel_thread=kernel_thread)


def parse_real_uid(data: bytes) -> Optional[int]:
    """The real uid from the "Uid:" line of /proc/<pid>/status; None when absent or malformed."""
    for line in data.split(b"\n"):
        if line.startswith(b"Uid:"):
            parts = line[4:].split()
            if parts and parts[0].isdigit() and len(parts[0]) <= 10:
                return int(parts[0])
            return None
    return None


def parse_cmdline(data: bytes) -> str:
    """The command line as one string, arguments separated by spaces (as ps prints it)."""
    if data.endswith(b"\0"):
        data = data[:-1]
    return decode(data.replace(b"\0", b" "))


def full_name(name, cmdline: bytes):
    """comm is cut at 15 bytes; like ps and psutil, take the program's name from argv[0] when
    it starts with the cut name."""
    if len(name) < 15 or not cmdline:
        return name
    first = decode(cmdline.split(b"\0", 1)[0].rsplit(b"/", 1)[-1])
    return first[:MAX_NAME_CHARS] if first.startswith(name) else name
