"""The end-to-end bench: the emulated router (ci/qemu), a real mosquitto it reaches over its WAN,
the real collector (routerwatch_collector: Subscriber -> Ingest -> SQLite) in a thread, and
helpers the scenarios share: attack tools run in the WAN/LAN namespaces, waiting for an anomaly
in the store, and the agent's memory and CPU in the router.

Timing numbers (attack start -> anomaly stored) and the agent's resource use are collected in
`metrics` and written to build/e2e-metrics.json at the end of the session: the x86_64 router's at
the top level (as before other CPUs existed), another CPU's under "arches" -> its name.
"""
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "ci" / "qemu"))

import arches  # noqa: E402
import netns  # noqa: E402
from vm import ROOT_PASSWORD, RouterVM  # noqa: E402,F401  (ROOT_PASSWORD: for the scenarios)

from broker import MosquittoBroker  # noqa: E402  (tests/broker.py)

DEVICE_ID = "e2e-router"
AGENT_CONFIG = "/tmp/routerwatch-e2e.json"
AGENT_LOG = "/tmp/routerwatch-agent.log"
POSTINST = "/usr/lib/opkg/info/routerwatch.postinst"     # where opkg keeps it
METRICS_FILE = REPO / "build" / "e2e-metrics.json"
BROKER_TEMPLATE = """\
per_listener_settings false
listener {port} %s
allow_anonymous true
# like a production broker: the collector's persistent session (its subscriptions and the QoS 1
# messages queued for it) survives a broker restart, saved every second because the outage
# scenario kills the broker hard
persistence true
persistence_location %s/
autosave_interval 1
log_dest file {log_file}
log_type all
connection_messages true
user {user}
{extra}
"""
# Faster than the defaults so a scenario takes seconds, not minutes; thresholds stay default.
AGENT_INTERVALS = {"connections": 2, "processes": 3, "integrity": 15, "heartbeat": 5}


class Collector:
    """The real collector in a thread: Subscriber -> Ingest -> SqliteStore at `db_path`."""

    def __init__(self, host, port, db_path, missed_heartbeats=3):
        self.host, self.port, self.db_path = host, port, str(db_path)
        self.missed_heartbeats = missed_heartbeats
        self.stop_event = threading.Event()
        self.error = None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="collector", daemon=True)
        self.subscriber = None

    def _run(self):
        from routerwatch_collector.ingest import Ingest
        from routerwatch_collector.store import open_store
        from routerwatch_collector.subscriber import Subscriber
        store = open_store(self.db_path)
        try:
            ingest = Ingest(store, missed_heartbeats=self.missed_heartbeats)
            self.subscriber = Subscriber(ingest, self.host, self.port,
                                         client_id="e2e-collector-" + secrets.token_hex(3),
                                         tick_interval=0.5)
            self.ready.set()
            self.subscriber.run(self.stop_event)
        except Exception as exc:  # surfaced by the tests through .error
            self.error = exc
        finally:
            store.close()

    def start(self):
        self.thread.start()
        self.ready.wait(10)
        return self

    def close(self):
        self.stop_event.set()
        self.thread.join(10)

    def store(self):
        from routerwatch_collector.store import open_store
        return open_store(self.db_path)

    def anomalies(self, kind=None, since=None):
        store = self.store()
        try:
            return store.query_anomalies(device=None, since=since, kind=kind, limit=100000)
        finally:
            store.close()

    def device(self, device=DEVICE_ID):
        store = self.store()
        try:
            for row in store.devices():
                if row.device == device:
                    return row
            return None
        finally:
            store.close()

    def gaps(self, device=DEVICE_ID):
        store = self.store()
        try:
            return store.gaps(device)
        finally:
            store.close()


class Bench:
    def __init__(self, workdir, arch=None):
        self.arch = arch or arches.get()
        self.workdir = Path(workdir)
        self.net = None
        self.vm = None
        self.broker = None
        self.collector = None
        self.agent_pid = None
        self.metrics = {"scenarios": {}, "agent": {}}
        self.admin_key = None

    # ------------------------------------------------------------------ bring-up
    def start(self):
        t0 = time.monotonic()
        self.net = netns.RouterNetwork().setup()
        template = self.workdir / "mosquitto.tmpl"
        (self.workdir / "mosquitto").mkdir(exist_ok=True)
        template.write_text(BROKER_TEMPLATE % (self.net.host_addr, self.workdir / "mosquitto"))
        self.broker = MosquittoBroker(self.workdir / "mosquitto", template=template)
        self.broker.host = self.net.host_addr
        self.broker.start()
        self.collector = Collector(self.broker.host, self.broker.port,
                                   self.workdir / "collector.sqlite").start()
        self.start_wan_services()
        self.vm = RouterVM(self.net, self.workdir / "vm", arch=self.arch)
        self.vm.start()
        self.metrics["boot"] = {"arch": self.arch.name, "accel": self.vm.accel, "accel_reason": self.vm.accel_reason,
                                "image_build_seconds": round(self.vm.build_seconds, 1),
                                "boot_seconds": round(self.vm.boot_seconds, 1)}
        self.prepare_owner_config()
        self.start_agent()
        self.metrics["bring_up_seconds"] = round(time.monotonic() - t0, 1)
        return self

    def start_wan_services(self):
        """One web server answering on every "internet" test host (and the WAN side)."""
        (self.workdir / "index.html").write_text("<html>hello from the internet</html>\n")
        log = open(self.workdir / "web.log", "ab")
        self.web = [self.net.popen("wan", [
            sys.executable, "-m", "http.server", "--bind", "0.0.0.0", "80",
            "--directory", str(self.workdir)], stdout=log, stderr=log)]
        log.close()

    def prepare_owner_config(self):
        """What the owner does on a new router before the agent runs: an admin key."""
        key = self.workdir / "admin_ed25519"
        if not key.exists():
            subprocess.run(["dropbearkey", "-t", "ed25519", "-f", str(key)], check=True,
                           capture_output=True)
        pub = subprocess.run(["dropbearkey", "-y", "-f", str(key)], check=True,
                             capture_output=True, text=True).stdout
        line = next(l for l in pub.splitlines() if l.startswith("ssh-ed25519 "))
        self.admin_key = key
        self.vm.write_file("/etc/dropbear/authorized_keys", line + "\n", 0o600)

    def agent_config(self):
        return {
            "device_id": DEVICE_ID,
            "mqtt": {"host": self.net.host_addr, "port": self.broker.port, "keepalive": 10},
            "intervals": AGENT_INTERVALS,
        }

    def start_agent(self, timeout=120):
        """Start the agent as the package would: /etc/config/routerwatch (the .ipk's conffile)
        edited with uci (as an ISP pre-seeds it), then the package's postinst as opkg runs it,
        which runs the uci-defaults and `/etc/init.d/routerwatch enable` and `start`, in the
        router with the functions.sh, procd and uci test doubles of tests/openwrt/shim; the
        command line the init script hands to procd is then started the way procd would.
        Without the init script or the doubles, the agent is started with a JSON config written
        here."""
        command = self.start_command_from_init_script()
        if command is None:
            self.vm.write_file(AGENT_CONFIG, json.dumps(self.agent_config(), indent=1))
            command = "exec routerwatch-agent --config %s" % AGENT_CONFIG
            self.metrics["agent_started_by"] = "JSON config written by the test"
        else:
            self.metrics["agent_started_by"] = ("the .ipk's postinst: uci-defaults, then "
                                                "/etc/init.d/routerwatch enable, start (procd double)")
        self.agent_command = command
        self.agent_started_at = time.time()
        self.agent_pid = self.vm.spawn(command, log=AGENT_LOG)
        self.wait_online(timeout)

    def start_command_from_init_script(self):
        shim = REPO / "tests" / "openwrt" / "shim"
        rc, _, _ = self.vm.sh("test -x /etc/init.d/routerwatch && test -f /etc/config/routerwatch")
        if rc != 0 or not (shim / "etc" / "rc.common").exists():
            return None
        guest_shim = "/tmp/e2e-shim"      # RAM, like everything else the test brings along
        for path in sorted(shim.rglob("*")):
            if path.is_file():
                self.vm.write_file("%s/%s" % (guest_shim, path.relative_to(shim)),
                                   path.read_text(), 0o755 if os.access(path, os.X_OK) else 0o644)
        env = ("SHIM_DIR={d} SHIM_ROOT=/ SHIM_PROCD_LOG=/tmp/e2e-procd.log SHIM_PROCD_RUNNING=0 "
               "SHIM_SYSLOG=/tmp/e2e-shim-syslog UCI_CONFIG_DIR=/etc/config "
               "PATH={d}/bin:/usr/sbin:/usr/bin:/sbin:/bin").format(d=guest_shim)
        sets = []
        for key, value in self.agent_config().items():
            if isinstance(value, dict):
                sets.append("%s=%s" % (key, key))
                sets.extend("%s.%s=%s" % (key, opt, val) for opt, val in value.items())
            else:
                sets.append("agent.%s=%s" % (key, value))
        script = " && ".join("uci set 'routerwatch.%s'" % item for item in sets)
        self.vm.out("%s sh -c \"%s && uci commit routerwatch\"" % (env, script))
        # opkg's last step of an install on a live router: `postinst configure`, whose
        # default_postinst (the double, reached through the ROM's /lib/functions.sh link) runs
        # the package's uci-defaults, then `/etc/init.d/routerwatch enable` and `start`
        rc, out, err = self.vm.sh("rm -f /tmp/e2e-procd.log; %s sh %s configure"
                                  % (env, POSTINST))
        if rc != 0:
            raise AssertionError("the package's postinst failed (%s): %s%s\n%s" % (
                rc, out, err, self.vm.sh("cat /tmp/e2e-shim-syslog")[1]))
        done = self.vm.out("test -e /etc/uci-defaults/99_routerwatch && echo defaults-left; "
                           "ls /etc/rc.d/ | grep routerwatch; true")
        if "defaults-left" in done or "routerwatch" not in done:
            raise AssertionError("postinst left the uci-defaults or did not enable the service: "
                                 "%r" % done)
        self.metrics["postinst_enabled"] = done.split()
        calls = [line.split("\x1f") for line in
                 self.vm.out("cat /tmp/e2e-procd.log").splitlines()]
        command = next((c[2:] for c in calls if c[:2] == ["procd_set_param", "command"]), None)
        if not command:
            raise AssertionError("the init script asked procd for no command: %r" % (calls,))
        env_params = [c[2:] for c in calls if c[:2] == ["procd_set_param", "env"]]
        self.vm.sh("rm -rf %s /tmp/e2e-shim-syslog" % guest_shim)
        words = [w for params in env_params for w in params] + command
        return "exec env " + " ".join("'%s'" % w.replace("'", "'\\''") for w in words)

    def wait_online(self, timeout=120, run_changed_from=None):
        timeout *= self.arch.time_scale      # timeouts are x86_64's, stretched for slower CPUs
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = self.collector.device()
            if row is not None and row.status == "online" and row.heartbeats > 0 and (
                    run_changed_from is None or row.run != run_changed_from):
                return row
            self.check_alive()
            time.sleep(0.5)
        raise AssertionError("the agent did not come online at the collector within %d s;\n%s"
                             % (timeout, self.agent_log()))

    def check_alive(self):
        if self.collector.error:
            raise AssertionError("the collector failed: %r" % (self.collector.error,))
        if self.vm.process.poll() is not None:
            raise AssertionError("QEMU exited:\n" + self.vm.diagnostics())

    def agent_log(self):
        rc, out, _ = self.vm.sh("tail -c 4000 %s" % AGENT_LOG)
        return out

    # ------------------------------------------------------------------ waiting for anomalies
    def wait_anomaly(self, kind, since, match=lambda a: True, timeout=120, what=""):
        """The first stored anomaly of `kind` received at or after `since` for which match(a)
        is true; AssertionError with the agent's log after `timeout` seconds (x86_64's,
        stretched by the CPU's time_scale)."""
        timeout *= self.arch.time_scale
        deadline = time.monotonic() + timeout
        while True:
            for anomaly in reversed(self.collector.anomalies(kind=kind, since=since)):
                if match(anomaly):
                    return anomaly
            if time.monotonic() > deadline:
                seen = sorted({a.kind for a in self.collector.anomalies(since=since)})
                raise AssertionError(
                    "no %s anomaly%s at the collector within %d s (kinds seen since: %s);"
                    "\nagent log:\n%s" % (kind, " " + what if what else "", timeout,
                                          ", ".join(seen) or "none", self.agent_log()))
            self.check_alive()
            time.sleep(0.5)

    def record(self, scenario, kind, started, anomaly, **extra):
        """Remember attack start -> anomaly stored for the report."""
        latency = round(anomaly.received_at - started, 2)
        entry = self.metrics["scenarios"].setdefault(scenario, {})
        entry[kind] = dict({"seconds_to_stored": latency, "severity": anomaly.severity}, **extra)
        print("\n[e2e] %-28s %-32s %6.1f s from the attack's first packet to the store"
              % (scenario, kind, latency))
        return latency

    # ------------------------------------------------------------------ the agent's footprint
    def agent_usage(self, seconds=5.0):
        """VmRSS/RssAnon/RssFile (kB) and CPU % of the agent over `seconds`, read in the router."""
        return self.usage({"agent": self.agent_pid}, seconds)["agent"]

    def usage(self, pids, seconds=5.0):
        """{name: VmRSS/RssAnon/RssFile/VmHWM (kB) and cpu_percent} of the router's processes
        `pids` ({name: pid}) over the same `seconds`; the CPU counts the children a process
        has waited for (a shell loop's `cat`s), as % of one emulated core."""
        names = sorted(pids)
        snap = "; ".join("cut -d' ' -f14-17 /proc/%d/stat" % pids[n] for n in names)
        mem = "; ".join("grep -E '^(VmRSS|RssAnon|RssFile|VmHWM):' /proc/%d/status | tr '\n' ' '"
                        "; echo" % pids[n] for n in names)
        script = "%s; %s; cat /proc/uptime; sleep %s; %s; cat /proc/uptime" % (
            mem, snap, seconds, snap)
        lines = self.vm.out(script, timeout=seconds + 60).splitlines()
        count = len(names)
        up0 = float(lines[2 * count].split()[0])
        up1 = float(lines[3 * count + 1].split()[0])
        result = {}
        for i, name in enumerate(names):
            words = lines[i].split()
            fields = {words[j].rstrip(":"): int(words[j + 1]) for j in range(0, len(words), 3)}
            before = sum(map(int, lines[count + i].split()))
            after = sum(map(int, lines[2 * count + 1 + i].split()))
            cpu = (after - before) / max(up1 - up0, 0.001)     # USER_HZ=100 ticks -> %
            result[name] = {"VmRSS_kB": fields.get("VmRSS"), "RssAnon_kB": fields.get("RssAnon"),
                            "RssFile_kB": fields.get("RssFile"), "VmHWM_kB": fields.get("VmHWM"),
                            "cpu_percent": round(cpu, 2), "sampled_seconds": seconds}
        return result

    def record_usage(self, label, seconds=5.0):
        usage = self.agent_usage(seconds)
        self.metrics["agent"][label] = usage
        print("\n[e2e] agent %-14s VmRSS %s kB (RssAnon %s, RssFile %s), CPU %.1f %% of one "
              "emulated core" % (label, usage["VmRSS_kB"], usage["RssAnon_kB"],
                                 usage["RssFile_kB"], usage["cpu_percent"]))
        return usage

    # ------------------------------------------------------------------ tools
    def wan(self, args, timeout=300):
        return self.net.run("wan", args, timeout=timeout)

    def lan(self, args, timeout=300):
        return self.net.run("lan", args, timeout=timeout)

    def hydra(self, users, passwords, source=None, tasks=4, extra=(), timeout=300):
        """Real hydra against the router's dropbear from the WAN side, optionally from one of
        the WAN namespace's addresses (by making it the source of the route to the router)."""
        work = self.workdir / ("hydra-" + secrets.token_hex(3))
        work.mkdir()
        (work / "users").write_text("".join(u + "\n" for u in users))
        (work / "passwords").write_text("".join(p + "\n" for p in passwords))
        six = source is not None and ":" in source
        target = "[%s]" % netns.ROUTER_WAN6 if six else netns.ROUTER_WAN
        route = (["ip", "-6", "route"] if six else ["ip", "route"])
        host = (netns.ROUTER_WAN6 + "/128") if six else (netns.ROUTER_WAN + "/32")
        if source:
            self.wan(route + ["replace", host, "dev", "wan0", "src", source])
        try:
            return self.net.run("wan", [
                "sh", "-c", "cd %s && exec hydra -I %s -L users -P passwords -t %d %s ssh://%s"
                % (work, "-6" if six else "", tasks, " ".join(extra), target)], timeout=timeout)
        finally:
            if source:
                self.wan(route + ["del", host])

    def admin_ssh(self, command="uptime", side="lan", address=None):
        address = address or (netns.ROUTER_LAN if side == "lan" else netns.ROUTER_WAN)
        return self.net.run(side, [
            "dbclient", "-y", "-y", "-i", str(self.admin_key), "-T",
            "root@%s" % address, command], timeout=120)

    # ------------------------------------------------------------------ teardown
    def close(self):
        for step in (lambda: self.vm and self.vm.close(),
                     lambda: self.collector and self.collector.close(),
                     lambda: self.broker and self.broker.close(),
                     self._stop_web, lambda: self.net and self.net.close()):
            try:
                step()
            except Exception as exc:  # keep tearing down the rest
                print("e2e teardown: %r" % (exc,), file=sys.stderr)
        self.write_metrics()

    def _stop_web(self):
        for proc in getattr(self, "web", []):
            try:
                os.killpg(proc.pid, 9)
            except ProcessLookupError:
                pass

    def write_metrics(self):
        METRICS_FILE.parent.mkdir(parents=True, exist_ok=True)
        everything = {}
        if METRICS_FILE.exists():
            try:
                everything = json.loads(METRICS_FILE.read_text())
            except ValueError:
                everything = {}
        if self.arch.name == arches.DEFAULT:
            everything = self._merged(everything)
        else:
            others = everything.setdefault("arches", {})
            others[self.arch.name] = self._merged(others.get(self.arch.name, {}))
        METRICS_FILE.write_text(json.dumps(everything, indent=1, sort_keys=True) + "\n")

    def _merged(self, existing):
        # a run of a few scenarios (-k) keeps the other scenarios' last figures
        scenarios = dict(existing.get("scenarios", {}), **self.metrics["scenarios"])
        agent = dict(existing.get("agent", {}), **self.metrics["agent"])
        merged = dict(existing, **self.metrics)
        merged.update(scenarios=scenarios, agent=agent, written_at=time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        return merged

