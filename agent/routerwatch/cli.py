"""routerwatch-agent: the command line.

Exit codes (also in --help):
  0  stopped cleanly (SIGTERM/SIGINT), or --once / check-log finished
  1  --once found anomalies of severity high or critical; check-log found no login event at all
  2  bad command line or bad configuration (the message names the option)
  3  a source or sink failed to start (e.g. the log file cannot be opened)
  4  stopped by an unexpected error (logged); the broker is told as for a crash, so the
     collector raises agent.silent, and procd starts the agent again
"""
import argparse
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from dataclasses import replace
from collections import Counter
from functools import lru_cache
from operator import itemgetter

from . import __version__, jsonio
from .contract import wire_text

EXIT_OK, EXIT_FOUND, EXIT_CONFIG, EXIT_START, EXIT_ERROR = 0, 1, 2, 3, 4

DESCRIPTION = """\
Watch an OpenWrt router for signs of compromise: login attacks on dropbear and LuCI, the
router's own outbound connections and new listening ports, and firmware/overlay tampering.
Anomalies go to an MQTT broker (mqtt.host set) or, without one, to stdout as JSON lines."""

EPILOG = """\
commands:
  (none)              run the agent until SIGTERM; SIGHUP reloads the config file
  check-log FILE      print every login event the agent recognises in FILE ('-' = stdin)
                      as one JSON object per line, then a summary (like fail2ban-regex):
                      lines read, events, and the dropbear/LuCI lines about logins that no
                      pattern recognised (unparsed_login_lines, with a few samples)
  baseline show       print the integrity baseline (path, sha256, size, mode) and its hash
  baseline create     scan now and make the result the new integrity baseline (accepts every
                      change made since the last one)

config:
  --config FILE       JSON config (the OpenWrt init script writes it from /etc/config/routerwatch)
  --set OPT=VALUE     override one option, repeatable: --set mqtt.port=8883
                      --set login.bruteforce.threshold=10   (see --help-config for all)

exit codes:
  0 clean stop, or --once/check-log done     1 --once found high/critical anomalies,
  2 bad command line or configuration           or check-log recognised no login event
  3 a source or sink could not start           4 stopped by an unexpected error (logged)
"""


def build_parser():
    parser = argparse.ArgumentParser(
        prog="routerwatch-agent", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version="routerwatch %s" % __version__)
    parser.add_argument("--config", metavar="FILE", help="JSON config file")
    parser.add_argument("--set", metavar="OPT=VALUE", action="append", default=[],
                        dest="overrides", help="override a config option (repeatable)")
    parser.add_argument("--root", metavar="DIR",
                        help="read /proc, /rom, /overlay, /etc under DIR (default /)")
    parser.add_argument("--log-file", metavar="FILE",
                        help="follow FILE (rotation and truncation handled) instead of logread")
    parser.add_argument("--stdin", action="store_true", help="read log lines from stdin")
    parser.add_argument("--once", action="store_true",
                        help="scan once, print the anomalies as JSON lines (each incident once, "
                             "with its final count and time span), exit (1 if any is "
                             "high or critical). Its state (baseline, device id, seen login "
                             "sources) goes to the state dir on OpenWrt (/etc/routerwatch) or "
                             "under --root; on any other machine to a temporary directory "
                             "removed at exit, unless --set state_dir=DIR names one")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging on stderr")
    parser.add_argument("--help-config", action="store_true",
                        help="list every config option with its default and range")
    parser.add_argument("--check-config", action="store_true",
                        help="load and validate the config, print the error if any, and exit "
                             "(0 valid, 2 invalid) without starting; the init script runs this "
                             "before procd starts the agent, so a bad value never respawns")
    parser.add_argument("command", nargs="?", choices=["run", "check-log", "baseline"], default="run",
                        help=argparse.SUPPRESS)
    parser.add_argument("file", nargs="?", help=argparse.SUPPRESS)
    return parser


def setup_logging(verbose):
    """The one logger setup: stderr, which procd forwards to the system log."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="routerwatch: %(levelname)s: %(message)s")


def _defaults_from_args(args):
    defaults = {}
    if args.root:
        defaults["root"] = args.root
    if args.log_file:
        defaults.setdefault("log", {}).update(source="file", path=args.log_file)
    if args.stdin:
        defaults.setdefault("log", {}).update(source="stdin")
    return defaults


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if args.command == "check-log" and not args.help_config:
        if not args.file:
            parser.error("check-log needs a FILE ('-' for stdin)")
        return check_log(args.file)     # needs no configuration: starts without loading it
    from .config import ConfigError, describe_options, load
    if args.help_config:
        print("options (JSON key or --set name, default, meaning, allowed range):")
        print("\n".join(describe_options()))
        return EXIT_OK
    if args.command == "baseline" and args.file not in ("show", "create"):
        parser.error("baseline needs 'show' or 'create'")
    if args.file and args.command != "baseline":
        parser.error("unexpected argument %r" % args.file)
    try:
        config = load(args.config, args.overrides, _defaults_from_args(args))
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    if args.check_config:
        return EXIT_OK
    if args.command == "baseline":
        from .sources.overlay import baseline_command
        return baseline_command(config, args.file, time.time())
    if args.once:
        return run_once(config)
    return run_forever(args, config)


def _make_agent(config, once=False, stream=None, previous=None):
    from .detectors import detector_classes
    from .identity import device_id
    from .runtime import Agent
    from .sinks import build_sink
    from .sinks.stdout import StdoutSink
    from .sources import build_sources

    classes = detector_classes()
    detectors = [classes[kind](cfg) for kind, cfg in config.detectors.items() if cfg.enabled]
    sources = build_sources(config, once=once)
    ident = device_id(config)
    import secrets
    run_id = secrets.token_hex(8)
    sink = StdoutSink(stream) if once else build_sink(config, ident, run_id, stream)
    return Agent(config, ident, sources, detectors, sink, run_id=run_id, previous=previous)


def state_goes_to_this_hosts_etc(config):
    """True when the state would go to the default state dir, /etc/routerwatch, of a machine
    that is not OpenWrt: someone trying the agent on a workstation. --once then uses a temporary
    dir; the running agent keeps it there but says so."""
    from .config import AgentConfig
    return (config.state_dir == AgentConfig.state_dir and config.root in ("", "/")
            and not os.path.exists(os.path.join(config.root or "/", "etc", "openwrt_release")))


def run_once(config):
    if state_goes_to_this_hosts_etc(config):
        with tempfile.TemporaryDirectory(prefix="routerwatch-once-") as state_dir:
            logging.getLogger("routerwatch").debug(
                "not OpenWrt: state kept in %s until exit (--set state_dir=DIR keeps it)",
                state_dir)
            return run_once(replace(config, state_dir=state_dir))
    try:
        agent = _make_agent(config, once=True)
    except OSError as exc:
        print("routerwatch: cannot start: %s" % exc, file=sys.stderr)
        return EXIT_START
    now = time.time()
    produced = agent.complete_pass(now)
    for source in agent.sources:
        source.close()
    serious = [a for a in produced if a.severity in ("high", "critical")]
    # stdout carries only the JSON lines; a clean machine prints none, so say what was done
    print("routerwatch: one scan: %d anomal%s, %d of them high or critical"
          % (len(produced), "y" if len(produced) == 1 else "ies", len(serious)), file=sys.stderr)
    return EXIT_FOUND if serious else EXIT_OK


def run_forever(args, config):
    stop = threading.Event()
    reload_requested = threading.Event()
    from .config import ConfigError, load

    def on_term(signum, frame):
        stop.set()
        if agent is not None:
            agent.wake.set()      # the loop may be waiting for its next poll

    def on_hup(signum, frame):
        reload_requested.set()
        if agent is not None:
            agent.wake.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGHUP, on_hup)
    agent = None
    while True:
        try:
            # after a reload the new agent takes over what the old one's detectors learned
            agent = _make_agent(config, previous=agent)
        except OSError as exc:
            print("routerwatch: cannot start: %s" % exc, file=sys.stderr)
            return EXIT_START
        logging.getLogger("routerwatch").info(
            "started %s as device %s (run %s)", __version__, agent.device_id, agent.run_id)
        if state_goes_to_this_hosts_etc(config):
            logging.getLogger("routerwatch").info(
                "not OpenWrt: the baseline, device id and seen login sources are kept in %s "
                "(--set state_dir=DIR puts them elsewhere)", config.state_dir)
        outcome = None
        try:
            outcome = agent.run(stop, reload_requested)
        except Exception:  # noqa: BLE001 - log it, and do not let it pass for a clean stop
            logging.getLogger("routerwatch").exception(
                "stopped by an unexpected error; reporting it as a crash")
            agent.close(clean=False)
            return EXIT_ERROR
        agent.close(final=outcome != "reload")
        if outcome != "reload":
            return EXIT_OK
        reload_requested.clear()
        try:
            config = load(args.config, args.overrides, _defaults_from_args(args))
            logging.getLogger("routerwatch").info("configuration reloaded")
        except ConfigError as exc:
            # keep running on the old config: a typo in a reload must not stop the watching
            logging.getLogger("routerwatch").error("%s; keeping the previous configuration", exc)


@lru_cache(maxsize=1024)
def _json_wire_text(text):
    """A user name or an address as a JSON string of its wire text; cached because a
    connection's lines repeat them (bounded: 1024 strings of at most MAX_USER_CHARS or an
    address)."""
    return jsonio.dumps(wire_text(text))


# check-log's line: jsonio.dumps(wire_value(attempt._asdict())) spelled out, because it is made
# once per event and a dict through the JSON encoder cost half of check-log under attack.
# service, outcome and method are the parsers' own words ([a-z_]), the numbers are the parsers'
# bounded ints, and the time is a float of logread's range, whose repr() is its JSON text
# (tests/agent/test_cli_login.py compares both forms on hostile lines).
_ATTEMPT_JSON = ('{"time":%r,"service":"%s","outcome":"%s","method":"%s","user":%s,'
                 '"source_ip":%s,"source_port":%s,"pid":%s,"attempts":%d}')


_OUTCOME = itemgetter(2)       # LoginAttempt.outcome
_SOURCE_IP = itemgetter(5)     # LoginAttempt.source_ip


def wire_login_attempt(attempt):
    """One LoginAttempt as check-log prints it: every field in its order (time, service,
    outcome, method, user, source_ip, source_port, pid, attempts)."""
    when, service, outcome, method, user, ip, port, pid, attempts = attempt
    return _ATTEMPT_JSON % (when, service, outcome, method,
                            "null" if user is None else _json_wire_text(user),
                            "null" if ip is None else _json_wire_text(ip),
                            "null" if port is None else port, "null" if pid is None else pid,
                            attempts)


def check_log(path):
    """Print each recognised login event as JSON, then a summary; exit 1 if none was found."""
    try:
        handle = sys.stdin.buffer if path == "-" else open(path, "rb")
    except OSError as exc:
        print("routerwatch: cannot read %s: %s" % (path, exc.strerror), file=sys.stderr)
        return EXIT_START
    try:
        summary = write_login_events(handle, sys.stdout.write)
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()
    print(jsonio.dumps({"summary": summary}))
    return EXIT_OK if summary["recognised"] else EXIT_FOUND


def write_login_events(handle, write):
    """check-log's work: every login event of a binary file-like object (only read(size) is
    used) written as one JSON line each; returns the summary (lines read, events, outcomes,
    distinct sources, login lines no pattern recognised)."""
    from .sources.logread import LineTally, iter_login_event_blocks

    recognised = 0
    by_outcome = Counter()
    sources = set()
    tally = LineTally()
    # a block's events at a time: counted, collected and joined in C where it can be
    for events in iter_login_event_blocks(handle, tally=tally):
        recognised += len(events)
        by_outcome.update(map(_OUTCOME, events))
        sources.update(map(_SOURCE_IP, events))
        write("\n".join(map(wire_login_attempt, events)) + "\n")
    sources.discard(None)
    return {"lines": tally.lines, "recognised": recognised, "outcomes": dict(by_outcome),
            "distinct_sources": len(sources), "unparsed_login_lines": tally.unparsed,
            "unparsed_samples": tally.unparsed_samples}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
