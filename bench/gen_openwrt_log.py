"""A seeded, realistic OpenWrt `logread` log, with the login events it contains as ground truth.

    python bench/gen_openwrt_log.py OUT.log [--lines 1000000] [--seed 1] [--dropbear mixed]

Line format (openwrt-formats.md §1.2): `Tue Nov 25 04:11:31 2025 authpriv.warn dropbear[1234]: ...`.
Most lines are the benign chatter of a home router (dnsmasq-dhcp, hostapd, kernel, netifd,
odhcpd, procd, dnsmasq); about 3% are dropbear connections and LuCI logins:

  category           line                                                          failure?
  bad_password       Bad password attempt for 'root' from 192.0.2.7:40112          yes
  nonexistent_2024   Login attempt for nonexistent user from 192.0.2.7:40112       yes (2024.86)
  nonexistent_2022   Login attempt for nonexistent user                            yes (2022.82: no
                                                                                   address; only
                                                                                   the Exit line of
                                                                                   the same pid has it)
  hostile_user       Bad password attempt for 'x' from 198.51.100.66:22' from REAL yes (fake address
                                                                                   inside the name)
  max_tries          Exit before auth from <ip:port>: (user 'root', 10 fails): Max auth tries reached
                     - user 'root'                                                 summary of 10
  luci_failure       uhttpd[pid]: [info] luci: failed login on / for root from ip  yes
  password_success / pubkey_success / luci_success                                 no (successes)
  exit_other         Exit before auth ...: Exited normally, Child connection ...   no

Attack sources are documentation addresses (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
2001:db8::/32); LAN clients are 192.168.1.x. IPv6 addresses are unbracketed, as dropbear before
2026.94 writes them, so the port follows the last colon.

Ground truth goes to OUT.truth.json: for every login-related line its 1-based line number, the
category, the connection (dropbear pid, or a LuCI request number), the source address and user.
"""
import argparse
import json
import random
import time
from pathlib import Path

START_EPOCH = 1764043891          # Tue Nov 25 04:11:31 2025 UTC: a fixed start keeps runs equal
AUTH_SHARE = 0.03                 # share of lines that are login-related
MEAN_GAP = 0.25                   # seconds between lines on average: 1M lines ~ 3 days

FAILURE_CATEGORIES = ("bad_password", "nonexistent_2024", "nonexistent_2022", "hostile_user",
                      "luci_failure")
SUCCESS_CATEGORIES = ("password_success", "pubkey_success", "luci_success")

HOSTILE_USERS = (
    "root' from 198.51.100.66:22",
    "admin from 203.0.113.200:2222",
    "a b c",
    "'; DROP TABLE anomalies; --",
    "user\"with\"quotes",
    "x" * 96,
    "%s%s%n",
    "ubnt' from [2001:db8::66]:22",
)
USERS = ("root", "root", "root", "root", "admin", "ubnt", "user", "test", "support", "oracle",
         "pi", "guest", "ftpuser", "git")
LAN_CLIENTS = ["192.168.1.%d" % n for n in range(100, 160)]
HOSTNAMES = ("android-3f2a", "iPhone", "laptop", "tv", "printer", "nas", "raspberrypi", "esp32",
             "thermostat", "desktop")
WAN_SERVER = "203.0.113.1"
WAN_ADDRESS = "203.0.113.45"


class Clock:
    def __init__(self, rng, start=START_EPOCH):
        self.rng = rng
        self.now = float(start)

    def tick(self, mean=MEAN_GAP):
        self.now += self.rng.expovariate(1.0 / mean)
        return self.now

    def stamp(self):
        return time.strftime("%a %b %e %H:%M:%S %Y", time.gmtime(self.now))


def mac(rng):
    return "%02x:%02x:%02x:%02x:%02x:%02x" % (
        0x02 | (rng.randrange(256) & 0xfc), rng.randrange(256), rng.randrange(256),
        rng.randrange(256), rng.randrange(256), rng.randrange(256))


class LogWriter:
    def __init__(self, rng, out, lines, dropbear, auth_share=AUTH_SHARE):
        self.rng = rng
        self.auth_share = auth_share
        self.out = out
        self.limit = lines
        self.written = 0
        self.clock = Clock(rng)
        self.truth = []
        self.dropbear = dropbear
        self.pid = 1800
        self.luci_requests = 0
        self.uhttpd_pid = 1542
        self.uptime = 30.0
        self.macs = [mac(rng) for _ in LAN_CLIENTS]
        v4 = ["%s.%d" % (net, host) for net in ("192.0.2", "198.51.100", "203.0.113")
              for host in range(2, 250)]
        v6 = ["2001:db8:%x::%x" % (rng.randrange(1, 0xffff), rng.randrange(1, 0xffff))
              for _ in range(60)]
        self.attackers = v4 + v6

    def full(self):
        return self.written >= self.limit

    def emit(self, facility, tag, message, truth=None):
        if self.full():
            return
        self.written += 1
        self.out.write("%s %s %s: %s\n" % (self.clock.stamp(), facility, tag, message))
        if truth is not None:
            truth["line"] = self.written
            self.truth.append(truth)

    def next_pid(self):
        self.pid += self.rng.randrange(1, 7)
        if self.pid > 32767:        # pid_max on small routers; pids are reused
            self.pid = 1800 + self.pid % 100
        return self.pid

    # ------------------------------------------------------------------ benign chatter
    def benign(self):
        rng = self.rng
        self.clock.tick()
        self.uptime = self.clock.now - START_EPOCH + 30.0
        i = rng.randrange(len(LAN_CLIENTS))
        ip, hw = LAN_CLIENTS[i], self.macs[i]
        pick = rng.random()
        if pick < 0.30:
            step = rng.choice(("DHCPDISCOVER(br-lan) %s" % hw, "DHCPOFFER(br-lan) %s %s" % (ip, hw),
                               "DHCPREQUEST(br-lan) %s %s" % (ip, hw),
                               "DHCPACK(br-lan) %s %s %s" % (ip, hw, rng.choice(HOSTNAMES))))
            self.emit("daemon.info", "dnsmasq-dhcp[1]", step)
        elif pick < 0.55:
            iface = rng.choice(("phy0-ap0", "phy1-ap0"))
            msg = rng.choice((
                "%s: STA %s IEEE 802.11: associated (aid %d)" % (iface, hw, rng.randrange(1, 20)),
                "%s: AP-STA-CONNECTED %s auth_alg=open" % (iface, hw),
                "%s: STA %s WPA: pairwise key handshake completed (RSN)" % (iface, hw),
                "%s: AP-STA-DISCONNECTED %s" % (iface, hw),
                "%s: STA %s IEEE 802.11: disassociated" % (iface, hw),
                "%s: STA %s IEEE 802.11: authenticated" % (iface, hw)))
            self.emit("daemon.info" if "STA " in msg[:20] else "daemon.notice", "hostapd", msg)
        elif pick < 0.70:
            msg = rng.choice((
                "br-lan: port %d(phy0-ap0) entered forwarding state" % rng.randrange(1, 5),
                "br-lan: port %d(lan%d) entered blocking state" % (rng.randrange(1, 5),
                                                                   rng.randrange(1, 5)),
                "mtk_soc_eth 1e100000.ethernet wan: Link is Up - 1Gbps/Full - flow control rx/tx",
                "IPv6: ADDRCONF(NETDEV_CHANGE): phy0-ap0: link becomes ready",
                "nf_conntrack: default automatic helper assignment has been turned off",
                "device lan%d entered promiscuous mode" % rng.randrange(1, 5)))
            self.emit("kern.info", "kernel", "[%12.6f] %s" % (self.uptime, msg))
        elif pick < 0.82:
            msg = rng.choice((
                "Interface 'wan' is now up", "Interface 'wan6' is now up",
                "Network device 'wan' link is up",
                "wan (%d): udhcpc: sending renew to server %s" % (rng.randrange(1500, 3000),
                                                                  WAN_SERVER),
                "wan (%d): udhcpc: lease of %s obtained from %s, lease time 86400"
                % (rng.randrange(1500, 3000), WAN_ADDRESS, WAN_SERVER)))
            self.emit("daemon.notice", "netifd", msg)
        elif pick < 0.90:
            pid = rng.randrange(1000, 1500)
            msg = rng.choice(("No default route present, overriding ra_lifetime!",
                              "Got DHCPv6 request from br-lan",
                              "Using a RA lifetime of 0 on br-lan",
                              "DHCPV6 SOLICIT IA_NA from %s on br-lan: ok fd00::%x/128"
                              % ("0001000126" + hw.replace(":", ""), rng.randrange(2, 4096))))
            self.emit("daemon.warn" if "route" in msg else "daemon.notice", "odhcpd[%d]" % pid, msg)
        elif pick < 0.95:
            msg = rng.choice(("- init complete -", "Instance odhcpd::instance1 s in a crash loop 6 "
                              "crashes, 0 seconds since last crash",
                              "Command failed: Not found", "/etc/rc.d/S95done: exit 0"))
            self.emit("daemon.info" if msg[0] == "-" else "user.notice", "procd", msg)
        else:
            msg = rng.choice(("read /etc/hosts - 4 names",
                              "read /tmp/hosts/dhcp.cfg01411c - %d names" % rng.randrange(2, 40),
                              "using nameserver %s#53" % WAN_SERVER,
                              "query[A] time.openwrt.org from %s" % ip,
                              "reply time.openwrt.org is 198.51.100.123"))
            self.emit("daemon.info", "dnsmasq[1]", msg)

    # ------------------------------------------------------------------ logins
    def attacker(self):
        return self.rng.choice(self.attackers)

    def dropbear_connection(self):
        """One SSH connection: 'Child connection', its auth lines, the 'Exit' line."""
        rng = self.rng
        pid = self.next_pid()
        tag = "dropbear[%d]" % pid
        pick = rng.random()
        lan = pick < 0.06
        ip = rng.choice(LAN_CLIENTS) if lan else self.attacker()
        port = rng.randrange(32768, 61000)
        addr = "%s:%d" % (ip, port)
        version = self.dropbear if self.dropbear != "mixed" else rng.choice(("2022.82", "2024.86"))
        conn = {"conn": "ssh-%d-%d" % (pid, self.written), "ip": ip, "dropbear": version}

        def line(facility, msg, category=None, user=None, failure=False):
            self.clock.tick(0.05)
            truth = None
            if category:
                truth = dict(conn, category=category, user=user, failure=failure)
            self.emit(facility, tag, msg, truth)

        line("authpriv.info", "Child connection from %s" % addr)
        if lan:      # the owner logging in
            if rng.random() < 0.5:
                line("authpriv.notice", "Password auth succeeded for 'root' from %s" % addr,
                     "password_success", "root")
            else:
                line("authpriv.notice", "Pubkey auth succeeded for 'root' with ssh-ed25519 key "
                     "SHA256:F0uwIzlhno8yKkDmOHl+Y52pLytTJe2kdMEdP1P9B5k from %s" % addr,
                     "pubkey_success", "root")
            line("authpriv.info", "Exit (root) from <%s>: Disconnect received" % addr)
            return
        kind = rng.random()
        if kind < 0.30:      # nonexistent user: the address depends on the dropbear version
            if version == "2022.82":
                line("authpriv.warn", "Login attempt for nonexistent user", "nonexistent_2022",
                     None, True)
            else:
                line("authpriv.warn", "Login attempt for nonexistent user from %s" % addr,
                     "nonexistent_2024", None, True)
            line("authpriv.info", "Exit before auth from <%s>: Exited normally" % addr,
                 "exit_other")
            return
        hostile = kind > 0.93
        user = rng.choice(HOSTILE_USERS) if hostile else rng.choice(USERS)
        fails = 10 if rng.random() < 0.15 else rng.randrange(1, 4)
        category = "hostile_user" if hostile else "bad_password"
        for _ in range(fails):
            line("authpriv.warn", "Bad password attempt for '%s' from %s" % (user, addr),
                 category, user, True)
        if fails == 10:
            line("authpriv.info", "Exit before auth from <%s>: (user '%s', 10 fails): Max auth "
                 "tries reached - user '%s'" % (addr, user, user), "max_tries", user)
        else:
            line("authpriv.info", "Exit before auth from <%s>: (user '%s', %d fails): Exited "
                 "normally" % (addr, user, fails), "exit_other", user)

    def luci_login(self):
        rng = self.rng
        self.luci_requests += 1
        self.clock.tick(0.5)
        ok = rng.random() < 0.15
        ip = rng.choice(LAN_CLIENTS) if ok else self.attacker()
        user = "root" if ok or rng.random() < 0.7 else rng.choice(USERS + HOSTILE_USERS[:3])
        category = "luci_success" if ok else "luci_failure"
        self.emit("daemon.err", "uhttpd[%d]" % self.uhttpd_pid,
                  "[info] luci: %s login on / for %s from %s"
                  % ("accepted" if ok else "failed", user, ip),
                  {"conn": "luci-%d" % self.luci_requests, "ip": ip, "category": category,
                   "user": user, "failure": not ok})

    def run(self):
        rng = self.rng
        while not self.full():
            # a connection writes ~4 lines on average
            if rng.random() < self.auth_share / (4 - 3 * self.auth_share):
                if rng.random() < 0.8:
                    self.dropbear_connection()
                else:
                    self.luci_login()
            else:
                self.benign()


def generate(path, lines=1_000_000, seed=1, dropbear="mixed", auth_share=AUTH_SHARE):
    """Write the log and its ground truth; returns the truth dict. auth_share: the share of
    login lines (0.03 a quiet router, 0.5 one under attack)."""
    path = Path(path)
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8", newline="\n", buffering=1 << 20) as out:
        writer = LogWriter(rng, out, lines, dropbear, auth_share)
        writer.run()
    counts = {}
    for entry in writer.truth:
        counts[entry["category"]] = counts.get(entry["category"], 0) + 1
    truth = {"lines": writer.written, "seed": seed, "dropbear": dropbear,
             "auth_share": auth_share, "counts": counts,
             "entries": writer.truth}
    truth_path(path).write_text(json.dumps(truth))
    return truth


def truth_path(path):
    path = Path(path)
    return path.with_name(path.name + ".truth.json")


def load_truth(path):
    return json.loads(truth_path(path).read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dropbear", choices=("2019.78", "2022.82", "2024.86", "mixed"),
                        default=None, help="which dropbear release's lines to write "
                        "(default: mixed, or 2024.86 with --exposed-day; 2019.78 only there)")
    parser.add_argument("--exposed-day", action="store_true",
                        help="a day of an internet-facing router instead (bots, the owner, "
                        "slow guessers, a spray)")
    parser.add_argument("--auth-share", type=float, default=AUTH_SHARE,
                        help="share of login lines (0.03 quiet, 0.5 under attack)")
    parser.add_argument("--benign-gap", type=float, default=2.0,
                        help="--exposed-day: mean seconds between the router's other lines")
    args = parser.parse_args()
    if args.exposed_day:
        truth = generate_exposed_day(args.out, args.seed, args.dropbear or "2024.86",
                                     args.benign_gap)
        print(json.dumps({"lines": truth["lines"], "sources": len(truth["failures"])}))
        return 0
    if args.dropbear == "2019.78":
        parser.error("--dropbear 2019.78 is only written with --exposed-day")
    truth = generate(args.out, args.lines, args.seed, args.dropbear or "mixed", args.auth_share)
    print(json.dumps({"lines": truth["lines"], "counts": truth["counts"]}, sort_keys=True))
    return 0



# ---------------------------------------------------------------------------- an exposed router
# A day in the log of a router whose SSH and LuCI face the internet, in one dropbear release's
# formats: background bots all day, the owner's key and password logins (LAN, a remembered office
# network, LuCI), a slow guesser under every 10-minute window, one at fail2ban's pace, a spray.
# Its truth says which incidents a detector must report and which logins are the owner's.
#
#   python bench/gen_openwrt_log.py OUT.log --exposed-day --dropbear 2019.78 [--benign-gap 2]

DAY = 86400
OWNER_LAN = ("192.168.1.20", "192.168.1.21", "fd00:1::20")
OWNER_OFFICE = "203.0.113.40"          # the owner's office: remembered by login.new_source
SLOW_GUESSER = "198.51.100.200"        # 4 tries every 11 minutes: never 5 in 10 minutes
STEADY_GUESSER = "198.51.100.201"      # 9 tries every 10-11 minutes, all day
FAST_GUESSER = "2001:db8:bad:1::66"    # 6 tries in 6 seconds
SPRAY_SOURCES = tuple("192.0.2.%d" % n for n in range(100, 140))
PUBKEY = "SHA256:F0uwIzlhno8yKkDmOHl+Y52pLytTJe2kdMEdP1P9B5k"
PUBKEY_MD5 = "md5 0f:1e:2d:3c:4b:5a:69:78:87:96:a5:b4:c3:d2:e1:f0"


class ExposedDay(LogWriter):
    """Lines are collected with their times and written in time order at the end."""

    def __init__(self, rng, dropbear, benign_gap):
        super().__init__(rng, None, 10 ** 9, dropbear)
        self.records = []
        self.benign_gap = benign_gap
        self.failures = {}        # source -> failures it made (dropbear's count)
        self.owner_logins = []

    def emit(self, facility, tag, message, truth=None):
        self.records.append((self.clock.now, len(self.records),
                             "%s %s %s: %s" % (self.clock.stamp(), facility, tag, message)))

    def at(self, when):
        self.clock.now = when
        return self

    # ------------------------------------------------------------------ one SSH connection
    def ssh(self, when, ip, user="root", fails=0, success=None, nonexistent=False):
        """A connection from ip: `fails` wrong passwords for user (or one nonexistent-user try),
        then a success ("password" | "pubkey") or an exit before auth."""
        pid = self.next_pid()
        tag = "dropbear[%d]" % pid
        addr = "%s:%d" % (ip, self.rng.randrange(32768, 61000))
        version = self.dropbear
        t = when

        def line(facility, msg):
            nonlocal t
            self.at(t).emit(facility, tag, msg)
            t += self.rng.uniform(0.3, 1.2)

        line("authpriv.info", "Child connection from %s" % addr)
        counted = 0
        if nonexistent:
            counted = 1
            if version == "2019.78":
                line("authpriv.warn", "Login attempt for nonexistent user '%s' from %s"
                     % (user, addr))
                line("authpriv.info", "Exit before auth: Max auth tries reached - user "
                     "'is invalid' from %s" % addr)
            elif version == "2022.82":
                line("authpriv.warn", "Login attempt for nonexistent user")
                line("authpriv.info", "Exit before auth from <%s>: Max auth tries reached - user "
                     "'is invalid'" % addr)
            else:
                line("authpriv.warn", "Login attempt for nonexistent user from %s" % addr)
                line("authpriv.info", "Exit before auth from <%s>: Max auth tries reached - user "
                     "'is invalid'" % addr)
        for _ in range(fails):
            line("authpriv.warn", "Bad password attempt for '%s' from %s" % (user, addr))
            counted += 1
        if counted:
            self.failures[ip] = self.failures.get(ip, 0) + counted
        if success == "password":
            line("authpriv.notice", "Password auth succeeded for '%s' from %s" % (user, addr))
        elif success == "pubkey":
            if version == "2019.78":
                line("authpriv.notice", "Pubkey auth succeeded for '%s' with key %s from %s"
                     % (user, PUBKEY_MD5, addr))
            else:
                line("authpriv.notice", "Pubkey auth succeeded for '%s' with ssh-ed25519 key %s "
                     "from %s" % (user, PUBKEY, addr))
        if success:
            self.owner_logins.append({"time": when, "ip": ip, "method": success,
                                      "service": "ssh"})
            line("authpriv.info", "Exit (%s) from <%s>: Disconnect received" % (user, addr))
        elif not nonexistent:
            if version == "2019.78":
                line("authpriv.info", "Exit before auth (user '%s', %d fails): Exited normally"
                     % (user, fails))
            else:
                line("authpriv.info", "Exit before auth from <%s>: (user '%s', %d fails): Exited "
                     "normally" % (addr, user, fails))

    def luci(self, when, ip, ok, user="root"):
        self.at(when).emit("daemon.err", "uhttpd[%d]" % self.uhttpd_pid,
                           "[info] luci: %s login on / for %s from %s"
                           % ("accepted" if ok else "failed", user, ip))
        if ok:
            self.owner_logins.append({"time": when, "ip": ip, "method": "password",
                                      "service": "luci"})
        else:
            self.failures[ip] = self.failures.get(ip, 0) + 1

    # ------------------------------------------------------------------ the day
    def day(self):
        rng, start = self.rng, START_EPOCH
        # the router's own chatter
        self.clock.now = start
        while self.clock.now < start + DAY:
            self.benign()
            self.clock.now += rng.expovariate(1.0 / self.benign_gap) - MEAN_GAP
        # background bots: a few hundred addresses, each a connection or three, few tries each
        bots = [a for a in self.attackers if a not in SPRAY_SOURCES][:400]
        for ip in bots:
            for _ in range(rng.choice((1, 1, 1, 2, 3))):
                when = start + rng.uniform(0, DAY - 600)
                if rng.random() < 0.35:
                    self.ssh(when, ip, user=rng.choice(USERS[4:]), nonexistent=True)
                else:
                    self.ssh(when, ip, fails=rng.choice((1, 1, 2, 3)))
        # the owner: key and password logins from home, the office, LuCI, all day
        for hour in range(0, 24, 2):
            when = start + hour * 3600 + rng.uniform(0, 3000)
            ip = rng.choice(OWNER_LAN)
            self.ssh(when, ip, success="pubkey" if hour % 4 else "password")
            self.luci(when + 900, rng.choice(OWNER_LAN[:2]), True)
        self.ssh(start + 9 * 3600 + 100, OWNER_OFFICE, success="password")
        self.ssh(start + 15 * 3600 + 100, OWNER_OFFICE, fails=1, success="password")   # a typo
        # a slow guesser and a steady one, all day
        t = start + 600
        while t < start + DAY - 700:
            self.ssh(t, SLOW_GUESSER, fails=4)
            t += 660
        t = start + 300
        while t < start + DAY - 700:
            self.ssh(t, STEADY_GUESSER, fails=9)
            t += rng.uniform(600, 660)
        # a fast one, over SSH and LuCI
        self.ssh(start + 4 * 3600, FAST_GUESSER, fails=3)
        for i in range(3):
            self.luci(start + 4 * 3600 + 3 + i, FAST_GUESSER, False)
        # a spray on root from 40 addresses over the afternoon, one try each
        for i, ip in enumerate(SPRAY_SOURCES):
            self.ssh(start + 12 * 3600 + 200 * i, ip, fails=1)

    def write(self, out):
        self.records.sort()
        for _, _, text in self.records:
            out.write(text + "\n")
        return len(self.records)


def generate_exposed_day(path, seed=1, dropbear="2024.86", benign_gap=2.0):
    """Write a day of an exposed router's log and its truth; returns the truth dict."""
    path = Path(path)
    writer = ExposedDay(random.Random(seed), dropbear, benign_gap)
    writer.day()
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        lines = writer.write(out)
    truth = {"lines": lines, "seed": seed, "dropbear": dropbear, "start": START_EPOCH,
             "failures": writer.failures, "owner_logins": writer.owner_logins,
             "owner_lan": list(OWNER_LAN), "owner_office": OWNER_OFFICE,
             "slow_guesser": SLOW_GUESSER, "steady_guesser": STEADY_GUESSER,
             "fast_guesser": FAST_GUESSER, "spray_sources": list(SPRAY_SOURCES)}
    truth_path(path).write_text(json.dumps(truth))
    return truth


if __name__ == "__main__":
    raise SystemExit(main())
