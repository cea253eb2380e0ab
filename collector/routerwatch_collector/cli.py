"""routerwatch-collector: the command line.

Exit codes (also in --help):
  0  stopped cleanly (SIGINT/SIGTERM), or a query finished
  2  bad command line (the message names the option)
  3  the store cannot be opened, or the broker refused the credentials
"""
import argparse
import datetime
import logging
import os
import re
import signal
import socket
import sys
import threading
import time

from routerwatch import jsonio
from routerwatch.contract import DEVICE_ID_RE, PREFIX_RE, SEVERITIES

from .ingest import DEFAULT_BATCH_SIZE
from .instance import NAME_RE, claim_instance
from .instance import client_id as instance_client_id
from .stores.base import GAP_CLAIM_MAX

EXIT_OK, EXIT_USAGE, EXIT_RUNTIME = 0, 2, 3
# seconds a thread runs before the interpreter lock goes to a waiting one (see run)
SWITCH_INTERVAL = 0.0005
DEFAULT_DB = "routerwatch.sqlite"

DESCRIPTION = """\
Receive routerwatch anomalies, heartbeats, status and inventory from an MQTT broker, validate
them against the message contract, drop duplicates, note sequence gaps, raise agent.silent for
routers whose agent stops talking, and store everything in SQLite (one host) or PostgreSQL (a fleet, several collectors)."""

EPILOG = """\
commands:
  run          subscribe to <prefix>/+/{anomaly,heartbeat,status,inventory} and store
               (--serve: the dashboard too, in the same process)
  serve        the read-only web dashboard and JSON API (default http://127.0.0.1:8080/)
  anomalies    list stored anomalies, newest last    (--device --since --kind --limit --json)
  devices      list devices: last seen, status, firmware, counts
  gaps         list sequence gaps: messages a router sent that never arrived (--device --json)
  rejected     list refused messages by reason, with the latest sample (--json)

exit codes:
  0 clean stop (SIGINT/SIGTERM) or query done     2 bad command line
  3 the store cannot be opened, or the broker refused the credentials

The broker password can come from the environment (ROUTERWATCH_MQTT_PASSWORD) instead of
--password, which other users can read in the process list.
"""

_RELATIVE_RE = re.compile(r"\A(\d{1,9})([smhdw])\Z")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_KIND_FILTER_RE = re.compile(r"\A[a-z]+(?:\.[a-z][a-z0-9_]*){0,3}(?:\.\*)?\Z")


def parse_since(text, now):
    """'1h', '30m', '2d' (before now) or an ISO time ('2026-11-25T16:00', zone-less = UTC)."""
    match = _RELATIVE_RE.match(text.strip())
    if match:
        return now - int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    try:
        when = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("--since wants a relative time like 90s, 15m, 1h, 2d, 1w or an ISO time "
                         "like 2026-11-25T16:00:00Z, got %r" % text[:80]) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()


def _bounded_int(name, lo, hi):
    def convert(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError("%s must be a whole number, got %r" % (name, text))
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError("%s must be %d-%d, got %d" % (name, lo, hi, value))
        return value
    return convert


def _bounded_float(name, lo, hi):
    def convert(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError("%s must be a number, got %r" % (name, text))
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError("%s must be %g-%g, got %g" % (name, lo, hi, value))
        return value
    return convert


def _matching(regex, name, example):
    def convert(text):
        if not regex.match(text):
            raise argparse.ArgumentTypeError("%s must look like %s, got %r" % (name, example,
                                                                             text[:80]))
        return text
    return convert


def _fleet_option_name(kind, field_name):
    return "--" + ("%s-%s" % (kind, field_name)).replace(".", "-").replace("_", "-")


def _add_fleet_options(parser):
    """One option per fleet detection threshold, declared beside its code (fleet/*.py Config)."""
    from .fleet import describe_options, fleet_detector_classes
    group = parser.add_argument_group(
        "fleet detections", "thresholds of fleet.campaign, fleet.implant and "
        "fleet.firmware_outlier (each: default, allowed range, why)")
    for kind, cls in fleet_detector_classes().items():
        for name, default, lo, hi, why in describe_options(cls):
            kind_of = _bounded_float if isinstance(default, float) else _bounded_int
            option = _fleet_option_name(kind, name)
            group.add_argument(option, dest="fleet__%s__%s" % (kind, name), default=default,
                               type=kind_of(option, lo, hi), metavar="N",
                               help="%s (%s-%s)" % (why.replace("%", "%%"), lo, hi))


def fleet_configs(args):
    """{kind: Config} from the parsed fleet options."""
    from dataclasses import fields

    from .fleet import fleet_detector_classes
    configs = {}
    for kind, cls in fleet_detector_classes().items():
        values = {f.name: getattr(args, "fleet__%s__%s" % (kind, f.name), f.default)
                  for f in fields(cls.Config)}
        configs[kind] = cls.Config(**values)
    return configs


def build_parser():
    from . import __version__
    parser = argparse.ArgumentParser(
        prog="routerwatch-collector", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version",
                        version="routerwatch-collector %s" % __version__)
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging on stderr")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    db_help = ("SQLite database file, or a PostgreSQL URL postgresql://user@host/dbname for a "
               "fleet (default %s, or $ROUTERWATCH_DB; a URL's password is better in "
               "$PGPASSWORD or ~/.pgpass)" % DEFAULT_DB)
    run = commands.add_parser("run", help="subscribe and store until SIGINT/SIGTERM",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    run.add_argument("--host", default="127.0.0.1", help="broker host")
    run.add_argument("--port", type=_bounded_int("--port", 1, 65535), default=None,
                     help="broker port (default 1883, 8883 with --tls)")
    run.add_argument("--tls", action="store_true", help="connect with TLS")
    run.add_argument("--ca-file", help="CA certificate for TLS (default: the system store)")
    run.add_argument("--cert-file", help="client certificate for mutual TLS")
    run.add_argument("--key-file", help="client key for mutual TLS")
    run.add_argument("--tls-insecure", action="store_true",
                     help="skip the broker host name check (testing only)")
    run.add_argument("--user", help="broker user name")
    run.add_argument("--password", help="broker password (better: $ROUTERWATCH_MQTT_PASSWORD)")
    run.add_argument("--prefix", default="routerwatch",
                     type=_matching(PREFIX_RE, "--prefix", "routerwatch or site/routerwatch"),
                     help="topic prefix the agents publish under")
    run.add_argument("--share-group", type=_matching(re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z"),
                                                     "--share-group", "collectors"),
                     help="MQTT 5 shared subscription group: collectors of one group split "
                          "the messages between them")
    run.add_argument("--client-id", help="MQTT client id, the name of the persistent session "
                     "and so the same on every start (default routerwatch-collector, with "
                     "--share-group routerwatch-collector-GROUP-INSTANCE). Brokers set up as "
                     "in ci/mosquitto/ replace it by the account's user name: one account per "
                     "collector")
    run.add_argument("--instance", type=_matching(NAME_RE, "--instance", "collector-2"),
                     help="with --share-group: this collector's name in its group, the same on "
                     "every start so a restart resumes its session and what the broker queued "
                     "for it (default HOST-N: the lowest N no running collector of the group on "
                     "this host holds, taken back by a restarted one)")
    run.add_argument("--protocol", choices=("3.1.1", "5"),
                     help="MQTT version (default 3.1.1, 5 with --share-group)")
    run.add_argument("--db", default=None, help=db_help)
    run.add_argument("--missed-heartbeats", type=_bounded_int("--missed-heartbeats", 1, 1000),
                     default=3, help="raise agent.silent after this many heartbeat intervals "
                     "without a heartbeat")
    run.add_argument("--stop-grace", metavar="SECONDS", default=900.0,
                     type=_bounded_float("--stop-grace", 0.0, 30 * 86400.0),
                     help="raise agent.silent (reason stopped) when an agent that stopped cleanly "
                     "is not back online within this many seconds: long enough for a reboot or "
                     "a sysupgrade, short enough that `/etc/init.d/routerwatch stop` does not "
                     "switch monitoring off unnoticed")
    run.add_argument("--flush-interval", type=_bounded_float("--flush-interval", 0.01, 60.0),
                     default=0.25, help="seconds a received message may wait for its batch")
    run.add_argument("--batch-size", type=_bounded_int("--batch-size", 1, 100000),
                     default=DEFAULT_BATCH_SIZE,
                     help="messages per store transaction at most (default %(default)s; on "
                     "MQTT 3.1.1 the broker's in-flight limit caps it: raise mosquitto's "
                     "max_inflight_messages to twice this)")
    run.add_argument("--dedupe-window", type=_bounded_int("--dedupe-window", 16, 10000000),
                     default=65536, help="recent message ids kept in memory to drop redeliveries")
    run.add_argument("--metrics-port", type=_bounded_int("--metrics-port", 1, 65535),
                     default=None, help="serve Prometheus metrics on http://HOST:PORT/metrics "
                     "(messages received, stored, rejected by reason, duplicates, batch time, "
                     "devices by state, anomalies by kind and severity); off by default")
    run.add_argument("--metrics-host", default="127.0.0.1",
                     help="address the metrics endpoint listens on")
    run.add_argument("--retention-days", type=_bounded_int("--retention-days", 1, 36500),
                     default=None, help="delete anomalies and heartbeat history received more "
                     "than this many days ago (default: keep everything)")
    _add_fleet_options(run)
    run.add_argument("--print", action="store_true", dest="print_anomalies",
                     help="print a line per stored anomaly on stdout")
    notify = run.add_argument_group(
        "notifications", "send stored anomalies to people with Apprise URLs such as "
        "ntfy://ntfy.sh/TOPIC, tgram://123456789:BOTTOKEN/CHATID, mailtos://user:pass@example.com, "
        "json://host/path (see the README); URLs may also come from $ROUTERWATCH_NOTIFY, "
        "separated by spaces, which keeps their tokens out of the process list")
    notify.add_argument("--notify", metavar="URL", action="append", default=[],
                        help="notify this Apprise URL (repeatable)")
    notify.add_argument("--notify-min-severity", choices=SEVERITIES, default="high",
                        help="notify anomalies of this severity and above")
    notify.add_argument("--notify-group-wait", metavar="SECONDS", default=30.0,
                        type=_bounded_float("--notify-group-wait", 0.0, 3600.0),
                        help="collect a router's anomalies this long into one message")
    notify.add_argument("--notify-group-threshold", metavar="N", default=10,
                        type=_bounded_int("--notify-group-threshold", 1, 10000),
                        help="send a router's message at once when it holds N anomalies")
    notify.add_argument("--notify-max-per-hour", metavar="N", default=6,
                        type=_bounded_int("--notify-max-per-hour", 1, 3600),
                        help="messages per router and hour at most; more anomalies wait and "
                             "are counted into the next message")
    notify.add_argument("--dashboard-url", metavar="URL", default="",
                        help="link added to each message; {device} is replaced by the router's "
                             "device id, e.g. https://dash.example/devices/{device}; fleet "
                             "detections link to the fleet page (https://dash.example/)")
    run.add_argument("--heartbeat-sample-spacing", type=_bounded_float(
                     "--heartbeat-sample-spacing", 1.0, 3600.0), default=60.0,
                     help="keep at most one heartbeat per device per this many seconds for the "
                     "dashboard's charts (a day of them)")
    run.add_argument("--serve", action="store_true",
                     help="also serve the dashboard (see `serve --help`)")
    _add_web_options(run)

    serve = commands.add_parser(
        "serve", help="serve the read-only dashboard and JSON API",
        description="Serve the dashboard (fleet, devices, anomalies) and its JSON API under "
                    "/api/ from the store. Read-only. Loopback by default; any other address "
                    "needs --auth-file, and should have --cert/--key or a TLS proxy in front.")
    serve.add_argument("--db", default=None, help=db_help)
    _add_web_options(serve)

    anomalies = commands.add_parser("anomalies", help="list stored anomalies")
    anomalies.add_argument("--db", default=None, help=db_help)
    anomalies.add_argument("--device", type=_matching(DEVICE_ID_RE, "--device", "rw-0a1b2c3d4e5f"))
    anomalies.add_argument("--since", metavar="T",
                           help="received at or after T: 90s, 15m, 1h, 2d, 1w or an ISO time")
    anomalies.add_argument("--kind", type=_matching(_KIND_FILTER_RE, "--kind",
                                                    "login.bruteforce or login.*"),
                           help="one kind, or a family like login.*")
    anomalies.add_argument("--limit", type=_bounded_int("--limit", 1, 1000000), default=100,
                           help="newest N (default 100)")
    anomalies.add_argument("--json", action="store_true", help="one JSON object per line")

    devices = commands.add_parser("devices", help="list devices")
    devices.add_argument("--db", default=None, help=db_help)
    devices.add_argument("--json", action="store_true", help="one JSON object per line")

    gaps = commands.add_parser(
        "gaps", help="list sequence gaps",
        description="Ranges of anomaly or heartbeat sequence numbers a router's agent run sent "
                    "that never arrived. A jump wider than %d is marked suspect and counted as "
                    "one event, not as missing messages." % GAP_CLAIM_MAX)
    gaps.add_argument("--db", default=None, help=db_help)
    gaps.add_argument("--device", type=_matching(DEVICE_ID_RE, "--device", "rw-0a1b2c3d4e5f"))
    gaps.add_argument("--json", action="store_true", help="one JSON object per line")

    iocs = commands.add_parser(
        "iocs", help="export the open campaigns' sources and the implants' hashes",
        description="Indicators the fleet detections found: the sources of open fleet.campaign "
                    "incidents (addresses and ranges) and the sha256 of fleet.implant programs. "
                    "--format nft prints `add element inet fw4 routerwatch_block { ... }` lines "
                    "(IPv6 in routerwatch_block6) for an ISP, banIP or an ACS to push to the "
                    "routers; the collector pushes nothing itself.")
    iocs.add_argument("--db", default=None, help=db_help)
    iocs.add_argument("--format", choices=("json", "csv", "nft"), default="json",
                      help="json: one object per line; csv: with a header; nft: an nftables "
                           "snippet of the addresses only")
    fleet = commands.add_parser(
        "fleet", help="the fleet picture: devices by state, campaigns, implants, firmware groups")
    fleet.add_argument("--db", default=None, help=db_help)
    fleet.add_argument("--json", action="store_true", help="one JSON object")

    rejected = commands.add_parser("rejected", help="list refused messages by reason")
    rejected.add_argument("--db", default=None, help=db_help)
    rejected.add_argument("--json", action="store_true", help="one JSON object per line")
    return parser


def _add_web_options(parser):
    parser.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT",
                        help="where the dashboard listens (default 127.0.0.1:8080; [::1]:8080 "
                        "for IPv6)")
    parser.add_argument("--auth-file", metavar="FILE",
                        help="users ('name:password' lines, HTTP Basic) and tokens (lines "
                        "without ':', 'Authorization: Bearer'), mode 0600; required off "
                        "loopback")
    parser.add_argument("--cert", metavar="PEM", help="TLS certificate: serve HTTPS")
    parser.add_argument("--key", metavar="PEM", help="TLS private key for --cert")


def setup_logging(verbose):
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="routerwatch-collector: %(levelname)s: %(message)s")


def main(argv=None):
    # what a router chose may not be encodable on this terminal (LANG=C, a pipe in latin-1):
    # shown escaped rather than ending the command with a traceback
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        return _main(argv)
    except BrokenPipeError:
        # `routerwatch-collector anomalies | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _main(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    args.db = args.db or os.environ.get("ROUTERWATCH_DB") or DEFAULT_DB
    if args.command == "run":
        return run(parser, args)
    if args.command == "serve":
        return serve(args)
    if args.command == "anomalies":
        since = None
        if args.since is not None:
            try:
                since = parse_since(args.since, time.time())
            except ValueError as exc:
                parser.error(str(exc))
        return list_anomalies(args, since)
    if args.command == "gaps":
        return list_gaps(args)
    if args.command == "rejected":
        return list_rejected(args)
    if args.command in ("iocs", "fleet"):
        return fleet_report(args)
    return list_devices(args)


# --------------------------------------------------------------------------- run

def _open(path, create, **options):
    from .stores import StoreError, StoreMissing, is_postgres, open_store, safe_location
    try:
        folder = os.path.dirname(str(path))
        if create and folder and not is_postgres(path) and not os.path.isdir(folder):
            # `run --db /var/lib/routerwatch/collector.sqlite` on a fresh machine
            os.makedirs(folder, mode=0o750, exist_ok=True)
        return open_store(path, create=create, **options)
    except StoreMissing:
        shown = safe_location(path)
        print("routerwatch-collector: no database at %s (run `routerwatch-collector run --db %s` "
              "first)" % (shown, shown), file=sys.stderr)
    except StoreError as exc:
        print("routerwatch-collector: %s" % exc, file=sys.stderr)
    except OSError as exc:
        print("routerwatch-collector: cannot open the database %s: %s" % (safe_location(path), exc),
              file=sys.stderr)
    return None


def run(parser, args):
    from .ingest import Ingest
    from .subscriber import BrokerRefused, Subscriber

    if (args.cert_file is None) != (args.key_file is None):
        parser.error("--cert-file and --key-file go together")
    if (args.ca_file or args.cert_file or args.tls_insecure) and not args.tls:
        parser.error("--ca-file, --cert-file, --key-file and --tls-insecure need --tls")
    if args.share_group and args.protocol == "3.1.1":
        logging.getLogger("routerwatch_collector").info(
            "shared subscriptions over MQTT 3.1.1 work on mosquitto and EMQX, not on every broker")
    port = args.port or (8883 if args.tls else 1883)
    client_id = args.client_id or "routerwatch-collector"
    slot = None
    if args.share_group and not args.client_id:
        # stable across restarts: a new id per start would leave the queue in the old session
        instance = args.instance
        if instance is None:
            try:
                slot = claim_instance(args.share_group)
            except (OSError, RuntimeError) as exc:
                print("routerwatch-collector: cannot pick an instance name (give --instance): %s"
                      % exc, file=sys.stderr)
                return EXIT_RUNTIME
            instance = slot.name
        client_id = instance_client_id(args.share_group, instance)
    password = args.password or os.environ.get("ROUTERWATCH_MQTT_PASSWORD")
    notifier = _notifier(parser, args)

    web = None
    if args.serve:
        from .web.server import ServeError, check_settings, parse_listen
        try:
            host, web_port = parse_listen(args.listen)
            credentials = check_settings(host, args.auth_file, args.cert, args.key)
        except ServeError as exc:
            parser.error(str(exc))
    for option, path in (("--ca-file", args.ca_file), ("--cert-file", args.cert_file),
                         ("--key-file", args.key_file)):
        # said before the database is made, and with the file's name (ssl's error has none)
        if path is not None and not os.access(path, os.R_OK):
            reason = "no such file" if not os.path.exists(path) else "not readable"
            print("routerwatch-collector: cannot set up the MQTT client: %s %s: %s"
                  % (option, path, reason), file=sys.stderr)
            return EXIT_RUNTIME
    store = _open(args.db, create=True, heartbeat_sample_spacing=args.heartbeat_sample_spacing,
                  retention_days=args.retention_days)
    if store is None:
        return EXIT_RUNTIME
    if args.serve:
        web = _start_web(args.db, host, web_port, credentials, args.cert, args.key)
        if web is None:
            store.close()
            return EXIT_RUNTIME
    ingest = Ingest(store, prefix=args.prefix, missed_heartbeats=args.missed_heartbeats,
                    dedupe_window=args.dedupe_window, stop_grace=args.stop_grace,
                    fleet_configs=fleet_configs(args))
    metrics = None
    if args.metrics_port:
        from .metrics import CollectorMetrics
        from .stores import open_store
        metrics = CollectorMetrics(ingest, lambda: open_store(args.db, create=False,
                                                              read_only=True),
                                   notifier=notifier)
        try:
            metrics.serve(args.metrics_host, args.metrics_port)
        except OSError as exc:
            store.close()
            if web is not None:
                web.stop()
            print("routerwatch-collector: cannot serve metrics on %s:%d: %s" % (
                args.metrics_host, args.metrics_port, exc.strerror or exc), file=sys.stderr)
            return EXIT_RUNTIME
    on_stored = _stored_hook(args.print_anomalies, notifier, metrics)
    try:
        subscriber = Subscriber(
            ingest, args.host, port, prefix=args.prefix, share_group=args.share_group,
            client_id=client_id, protocol=args.protocol, username=args.user, password=password,
            tls=args.tls, ca_file=args.ca_file, cert_file=args.cert_file,
            key_file=args.key_file, tls_insecure=args.tls_insecure,
            flush_interval=args.flush_interval, batch_size=args.batch_size, on_stored=on_stored,
            on_batch=metrics.batch_written if metrics is not None else None)
    except (OSError, ValueError) as exc:   # unreadable TLS files (ssl.SSLError is an OSError)
        store.close()
        if web is not None:
            web.stop()
        print("routerwatch-collector: cannot set up the MQTT client: %s" % exc, file=sys.stderr)
        return EXIT_RUNTIME

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log = logging.getLogger("routerwatch_collector")
    from .stores import safe_location
    log.info("collecting from %s:%d into %s as %s (collector run %s)", args.host, port,
             safe_location(args.db), client_id, ingest.run_id)
    if notifier is not None:
        notifier.start()
        log.info("notifying %s of %s and above", ", ".join(t.name for t in notifier.targets),
                 args.notify_min_severity)
    # The MQTT thread decodes while the writer waits for the database; when the database
    # answers, the writer waits for the interpreter lock until the decoding thread is made to
    # let go, 5 ms by default, per round trip and with the batch's row locks held (which other
    # collectors of a group then wait for). 0.5 ms: 9,200 -> 11,100 messages/s on PostgreSQL,
    # 2,700 -> 3,200/s for three collectors of a group (bench/bench_ingest.py).
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        subscriber.run(stop)
    except BrokerRefused as exc:
        print("routerwatch-collector: %s" % exc, file=sys.stderr)
        return EXIT_RUNTIME
    except Exception as exc:  # TLS files unreadable and the like: a message, not a traceback
        print("routerwatch-collector: %s" % exc, file=sys.stderr)
        return EXIT_RUNTIME
    finally:
        if web is not None:
            web.stop()
        if metrics is not None:
            metrics.stop()
        store.close()
        if notifier is not None:
            notifier.close()
            log.info("notifications: %s", notifier.summary())
    counters = ingest.counters
    log.info("stopped: %d received, %d stored, %d duplicates, %d rejected%s",
             counters["received"], counters["stored"], counters["duplicates"],
             counters["rejected"], "" if not ingest.rejects else " (%s)" % ", ".join(
                 "%s %d" % item for item in sorted(ingest.rejects.items())))
    return EXIT_OK


def _notifier(parser, args):
    """The Notifier for --notify URLs and $ROUTERWATCH_NOTIFY, or None without any."""
    urls = list(args.notify) + os.environ.get("ROUTERWATCH_NOTIFY", "").split()
    if not urls:
        return None
    from .notify import InvalidTarget, Notifier, Target
    try:
        targets = [Target(url) for url in urls]
    except InvalidTarget as exc:
        parser.error(str(exc))
    return Notifier(targets, min_severity=args.notify_min_severity,
                    dashboard_url=args.dashboard_url, group_wait=args.notify_group_wait,
                    group_threshold=args.notify_group_threshold,
                    max_per_hour=args.notify_max_per_hour)


def _stored_hook(print_anomalies, notifier, metrics=None):
    """What happens to each newly stored anomaly: printed (--print), notified (--notify),
    counted (--metrics-port)."""
    hooks = [hook for hook in (_print_anomaly if print_anomalies else None,
                               notifier.anomaly_stored if notifier is not None else None,
                               metrics.anomaly_stored if metrics is not None else None) if hook]
    if not hooks:
        return None

    def on_stored(row):
        for hook in hooks:
            hook(row)
    return on_stored


# --------------------------------------------------------------------------- serve

def _web_app(db, credentials):
    from .stores import open_store
    from .web.app import create_app
    from .web.server import store_factory
    return create_app(store_factory(db, open_store), credentials=credentials)


def _bind_check(host, port):
    """Fail with a message, not a traceback from the server thread, when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        print("routerwatch-collector: cannot listen on %s:%d: %s" % (
            "[%s]" % host if ":" in host else host, port, exc.strerror), file=sys.stderr)
        return False
    return True


def _start_web(db, host, port, credentials, cert, key):
    from .stores import safe_location
    from .web.server import BackgroundServer, uvicorn_server
    if not _bind_check(host, port):
        return None
    server = uvicorn_server(_web_app(db, credentials), host, port, cert, key)
    logging.getLogger("routerwatch_collector").info(
        "dashboard on %s://%s:%d/ from %s", "https" if cert else "http",
        "[%s]" % host if ":" in host else host, port, safe_location(db))
    return BackgroundServer(server).start()


def serve(args):
    from .web.server import ServeError, check_settings, parse_listen
    try:
        host, port = parse_listen(args.listen)
        credentials = check_settings(host, args.auth_file, args.cert, args.key)
    except ServeError as exc:
        print("routerwatch-collector: %s" % exc, file=sys.stderr)
        return EXIT_USAGE
    store = _open(args.db, create=False)     # the schema is current, and the file exists
    if store is None:
        return EXIT_RUNTIME
    store.close()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    # the server runs in a thread, as beside `run`: the signals are this thread's to handle,
    # so SIGTERM is a clean stop with exit code 0
    web = _start_web(args.db, host, port, credentials, args.cert, args.key)
    if web is None:
        return EXIT_RUNTIME
    while not stop.wait(0.5):
        if not web.thread.is_alive():
            print("routerwatch-collector: the dashboard server stopped", file=sys.stderr)
            return EXIT_RUNTIME
    web.stop()
    return EXIT_OK


# --------------------------------------------------------------------------- output

_UNPRINTABLE_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text):
    """Attacker-chosen text on a terminal: control characters (escape sequences, bidi
    overrides) shown as \\xNN instead of acted on."""
    text = str(text)
    if text.isprintable():
        # no control, format or separator character at all (the class the pattern lists is
        # within those), as for nearly every line of a fleet-sized list: nothing to replace
        return text
    return _UNPRINTABLE_RE.sub(lambda m: "\\x%02x" % ord(m.group()) if ord(m.group()) < 256
                               else "\\u%04x" % ord(m.group()), str(text))


def _iso(seconds):
    if seconds is None:
        return "-"
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def format_anomaly(row):
    source = row.evidence.get("source_ip") if isinstance(row.evidence, dict) else None
    return "%s %-8s %-28s %s seq=%d%s  %s" % (
        _iso(row.received_at), row.severity, printable(row.kind), printable(row.device), row.seq,
        " from %s" % printable(source) if isinstance(source, str) else "",
        printable(row.summary))


def _print_anomaly(row):
    print(format_anomaly(row), flush=True)


def list_anomalies(args, since):
    store = _open(args.db, create=False)
    if store is None:
        return EXIT_RUNTIME
    try:
        rows = store.query_anomalies(device=args.device, since=since, kind=args.kind,
                                     limit=args.limit)
    finally:
        store.close()
    for row in reversed(rows):   # newest last, like a log
        if args.json:
            print(jsonio.dumps(row.as_dict(), ascii_only=True))
        else:
            print(format_anomaly(row))
    return EXIT_OK


def _age(seconds, now):
    if seconds is None:
        return "never"
    age = max(0, int(now - seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if age >= size:
            return "%d%s ago" % (age // size, unit)
    return "%ds ago" % age


def fleet_report(args):
    from .fleet import report
    store = _open(args.db, create=False)
    if store is None:
        return EXIT_RUNTIME
    now = time.time()
    try:
        if args.command == "iocs":
            rows = report.indicators(store, now)
        else:
            picture = report.fleet_picture(store, now)
    finally:
        store.close()
    if args.command == "fleet":
        if args.json:
            print(jsonio.dumps(picture, ascii_only=True))
        else:
            sys.stdout.write(report.picture_text(picture))
    elif args.format == "csv":
        sys.stdout.write(report.as_csv(rows))
    elif args.format == "nft":
        sys.stdout.write(report.as_nft(rows))
    else:
        for row in rows:
            print(jsonio.dumps(row, ascii_only=True))
    return EXIT_OK


def _ascii_json(text):
    """A JSON document the store kept, as one ASCII line: passed on as it is unless it holds
    non-ASCII characters (then re-encoded with escapes, like the rest of the line)."""
    if text is None:
        return "null"
    if text.isascii():
        return text
    return jsonio.dumps(jsonio.loads(text), ascii_only=True)


def device_json(listing):
    """One line of `devices --json`: DeviceRow.as_dict() of the device, with the last
    heartbeat and the firmware spliced in as the JSON they are stored as, not decoded and
    encoded again (the cost of a fleet-sized list)."""
    return '%s,"last_heartbeat":%s,"firmware":%s}' % (
        jsonio.dumps(listing.plain(), ascii_only=True)[:-1],
        _ascii_json(listing.last_heartbeat_json), _ascii_json(listing.firmware_json))


# lines of the device list joined into one write: a write per device costs more than its
# formatting, and a fleet has 100,000 of them
DEVICE_LINES_PER_WRITE = 1000


def _written_in_chunks(out, lines):
    chunk = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= DEVICE_LINES_PER_WRITE:
            out.write("".join(chunk))
            chunk.clear()
    out.write("".join(chunk))


def list_devices(args):
    store = _open(args.db, create=False)
    if store is None:
        return EXIT_RUNTIME
    now = time.time()
    # streamed: each device printed as it is read, so a fleet of any size lists in bounded memory
    out = sys.stdout
    try:
        if args.json:
            _written_in_chunks(out, (device_json(row) + "\n"
                                     for row in store.iter_devices(labels=False)))
            return EXIT_OK
        out.write("%-22s %-8s %-10s %-9s %-28s %9s %10s %5s\n" % (
            "DEVICE", "STATUS", "LAST SEEN", "SILENT", "FIRMWARE", "ANOMALIES", "HEARTBEATS",
            "GAPS"))
        suspect = []
        _written_in_chunks(out, _device_lines(store.iter_device_lines(), now, suspect))
        rejected = store.rejected()
    finally:
        store.close()
    if sum(suspect):
        print("suspect sequence jumps: %d (routerwatch-collector gaps)" % sum(suspect))
    if rejected:
        print("rejected messages: %s" % ", ".join("%s %d" % item for item in rejected.items()))
    return EXIT_OK


# distinct firmware labels and ages remembered while listing: a fleet runs a few firmware
# versions and its heartbeats make many devices the same age, so most lines reuse both; the
# memory stays bounded whatever the stored values (each table is emptied when full)
_LINE_CACHE_MAX = 4096


def _device_lines(rows, now, suspect):
    """The text list's line of each device; each device's suspect jumps appended to
    `suspect` for the total."""
    labels, ages = {}, {}
    for row in rows:
        release_model = (row.firmware_release, row.firmware_model)
        label = labels.get(release_model)
        if label is None:
            if len(labels) >= _LINE_CACHE_MAX:
                labels.clear()
            label = labels[release_model] = printable(row.firmware_label())[:28] or "-"
        seen = row.last_seen
        seconds_ago = None if seen is None else int(now - seen)    # what _age depends on
        age = ages.get(seconds_ago)
        if age is None:
            if len(ages) >= _LINE_CACHE_MAX:
                ages.clear()
            age = ages[seconds_ago] = _age(seen, now)
        if row.gaps_suspect:
            suspect.append(row.gaps_suspect)
        yield "%-22s %-8s %-10s %-9s %-28s %9d %10d %5d\n" % (
            printable(row.device), row.status or "-", age, "yes" if row.silent_since else "no",
            label, row.anomalies, row.heartbeats, row.gaps_missing)


def list_gaps(args):
    store = _open(args.db, create=False)
    if store is None:
        return EXIT_RUNTIME
    try:
        rows = store.gaps(device=args.device)
    finally:
        store.close()
    if args.json:
        for row in rows:
            print(jsonio.dumps(row, ascii_only=True))
        return EXIT_OK
    print("%-20s %-22s %-16s %-9s %17s %17s %8s" % (
        "DETECTED", "DEVICE", "RUN", "TYPE", "FIRST SEQ", "LAST SEQ", "MISSING"))
    for row in rows:
        print("%-20s %-22s %-16s %-9s %17d %17d %8s" % (
            _iso(row["detected_at"]), printable(row["device"]), printable(row["run"]),
            printable(row["type"]), row["first_seq"], row["last_seq"],
            "suspect" if row["suspect"] else row["missing"]))
    return EXIT_OK


def list_rejected(args):
    store = _open(args.db, create=False)
    if store is None:
        return EXIT_RUNTIME
    try:
        rows = store.rejected_rows()
    finally:
        store.close()
    for row in rows:
        if args.json:
            print(jsonio.dumps(row, ascii_only=True))
        else:
            print("%-16s %8d  last %s from %s: %s" % (
                printable(row["reason"]), row["count"], _iso(row["last_at"]),
                printable(row["last_device"] or "-"), printable(row["last_detail"] or "")))
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
