"""Sources: I/O only. Each module reads one thing under the root prefix and yields events.

    lan_networks.py LanNetworkSource polled LanNetworks      (/proc/net/route, ipv6_route)
    logread.py     LogSource          stream  LoginAttempt        (logread -f | a file | stdin)
    conntrack.py   ConntrackSource    polled  ConntrackSnapshot   (/proc/net/nf_conntrack)
    sockets.py     ListenerSource     polled  ListenerSnapshot    (/proc/net/{tcp,udp,raw}{,6})
    processes.py   ProcessSource      polled  ProcessSnapshot     (/proc/<pid>/{stat,exe,cmdline,status,fd})
    overlay.py     IntegritySource    polled  FileFinding, FirmwareIdentity (/rom vs /overlay/upper)

Every source is built as Class(config: AgentConfig) and offers counters(), drops(), close().
"""
import importlib

# watcher switch -> (module, class) in the order the loop polls them
# (the LAN networks come first: --once judges the log's sources by them)
SOURCES_BY_WATCHER = (
    (("logins", "connections"), "lan_networks", "LanNetworkSource"),
    ("logins", "logread", "LogSource"),
    ("connections", "conntrack", "ConntrackSource"),
    ("connections", "sockets", "ListenerSource"),
    ("processes", "processes", "ProcessSource"),
    ("integrity", "overlay", "IntegritySource"),
)


def watcher_of(source):
    """The watcher ("logins", "connections" ...) a built source belongs to (a source may also
    say it itself with a `watcher` attribute)."""
    if getattr(source, "watcher", None):
        return source.watcher
    name = type(source).__name__
    for watcher, _module, class_name in SOURCES_BY_WATCHER:
        if class_name == name:
            return watcher
    return None


def build_sources(config, once=False):
    """The sources the config switches on. With once=True the log source reads what is there
    and stops instead of following."""
    sources = []
    for watcher, module_name, class_name in SOURCES_BY_WATCHER:
        watchers = watcher if isinstance(watcher, tuple) else (watcher,)
        if not any(getattr(config.watchers, name) for name in watchers):
            continue
        if watcher == "logins" and config.log.source == "none":
            continue
        module = importlib.import_module("%s.%s" % (__name__, module_name))
        cls = getattr(module, class_name)
        sources.append(cls(config, once=once) if watcher == "logins" else cls(config))
    return sources
