"""What to do about each anomaly kind: the one text that the README's tables of anomaly kinds
(the "what to do" column), the notifications and the dashboard show.

tests/collector/test_catalogue.py checks that every row of the README's tables says exactly what
is written here (a `|` is written `\\|` in a README table), so the text is edited here and copied
to the README (or the other way round) and the two never drift apart; a new kind's README row
needs its entry here. A kind without an entry (a newer agent's) gets GENERIC_WHAT_TO_DO.
"""

GENERIC_WHAT_TO_DO = ("Look at the anomaly's evidence and the router's other anomalies around "
                      "the same time; the README's table of anomaly kinds explains each kind.")

WHAT_TO_DO = {
    "login.bruteforce": (
        'Check whether the source is yours. If not: make sure SSH/LuCI are not reachable from the'
        ' WAN (firewall zone input), use keys only (`PasswordAuth off`), block the source.'),
    "login.spray": (
        'The login services are reachable by strangers: close them on the WAN, disable password '
        'logins, and check for login.success_after_failures / login.new_source around the same '
        'time.'),
    "login.success_after_failures": (
        'Treat the password as guessed: change it, look at who is logged in, check the other '
        'anomalies of this router (new listeners, code in /tmp, overlay changes), consider '
        'reflashing.'),
    "login.new_source": (
        'Confirm it was you or another admin. A public network you do not know means someone has '
        'the password or a key: act as for success_after_failures.'),
    "conn.new_listener": (
        'Find the owner in the evidence (`pid`, `exe`); if you did not install it, copy '
        '`/proc/<pid>/exe` off the router, then kill it, look for what starts it (crontabs, '
        '`/etc/rc.local`, init scripts) and reflash. A port of a service you just enabled is '
        'expected.'),
    "conn.raw_socket": (
        'A scanner or flooder runs on the router: the evidence names the holder (`pid`, `exe`); '
        'copy `/proc/<pid>/exe` off the router, kill it, and look at `conn.scan` and '
        '`integrity.exec_from_tmp` around the same time. If you run nmap on the router yourself, '
        'add it to `allowed_programs`.'),
    "conn.fanout": (
        'Look at `top_services` and `sample`; a router has no reason to talk to that many hosts '
        'unless you run e.g. a torrent client on it. Otherwise find the process (`netstat -tunp`)'
        ' and treat the router as compromised.'),
    "conn.scan": (
        'The router is running a scanner: find the process (`netstat -tunp`, the '
        'conn.new_listener / integrity.exec_from_tmp anomalies around it), reflash, change the '
        'passwords and close telnet/SSH/LuCI on the WAN.'),
    "conn.relay": (
        "The router is relaying strangers' traffic: evidence names the port, the peers and where "
        "the router connected to. Find the listener's owner, kill it, reflash; block the peers."),
    "conn.beacon": (
        'Look up the destination; a DDNS update or monitoring job you set up is expected (add it '
        'to `ignore_destinations`). Otherwise find the process making the connections and treat '
        'the router as compromised.'),
    "conn.table_pressure": (
        'If forwarded: a LAN device is opening very many connections (P2P, a compromised device);'
        " raise `net.netfilter.nf_conntrack_max` if the router has the RAM. If the router's own: "
        'see conn.scan / conn.fanout.'),
    "integrity.rom_shadowed": (
        'compare the file with `/rom/<path>` and the package (`apk audit`); a replaced '
        '`dropbear`/`busybox`/library means the router is compromised: reflash with `sysupgrade '
        '-n` (do not keep settings), change every password and key'),
    "integrity.package_mismatch": (
        'reinstall the package (`apk fix <pkg>` / `opkg install --force-reinstall <pkg>`) and see'
        ' if it comes back; an unowned binary: copy it off for analysis, find what starts it '
        '(`/etc/rc.d`, crontabs, `/etc/rc.local`), then reflash'),
    "integrity.baseline_drift": (
        'if you did not make the change, treat as an intrusion (new SSH key, cron job, init '
        'script); if you did, accept it with `routerwatch-agent baseline create` (`baseline show`'
        ' prints what is tracked)'),
    "integrity.exec_from_tmp": (
        'note the pid, its ports and parent (evidence), copy `/proc/<pid>/exe` off the router '
        'before killing it, look for what downloaded it (crontabs, rc.local, login log), then '
        'reflash and rotate credentials'),
    "integrity.deleted_exe": (
        'recover the binary with `cp /proc/<pid>/exe /tmp/evidence` before killing it; after a '
        'package upgrade just restart the service'),
    "integrity.firmware_changed": (
        'expected after your own sysupgrade; otherwise compare the image with the published '
        '`sha256sums` for the release and reflash from openwrt.org'),
    "integrity.special_file": (
        'a router makes none of these: find the process holding it (`ls -l /proc/*/fd | grep '
        '<name>`), remove it (`rm` on the path in `/overlay/upper`), then treat the router as '
        'compromised (reflash, change passwords and keys)'),
    "integrity.file_flood": (
        'look at the named directory (`ls /overlay/upper/<dir> | head`); junk written to fill the'
        ' overlay means someone with root is hiding something: check the other integrity '
        'anomalies, then reflash. A package that keeps data on flash: move its data to external '
        'storage, or raise `integrity.max_files` if the router has the RAM (about 400 bytes per '
        'file). A bloated package database (`ls -l` it; a router\'s is well under 1 MB) was '
        'written by someone with root: reflash'),
    "agent.degraded": (
        'The agent is running but blind. If you did not stop that service yourself '
        '(`/etc/init.d/log`, a firewall removal), someone with root did: treat the router as '
        'compromised and look at what happened just before (logins, new listeners, overlay '
        'changes).'),
    "agent.silent": (
        'Check whether the router is up and reachable. If it is but the agent is not running, '
        'someone may have killed or stopped it (reason `stopped`: nobody rebooted or upgraded '
        "it?): look at the router's last anomalies and log (logins just before?), restart the "
        'agent and watch for it to fall silent again.'),
    "fleet.campaign": (
        'One attacker works through the fleet: block the source at the edge (export it with '
        '`routerwatch-collector iocs --format nft`), check the listed devices for '
        'login.success_after_failures and close SSH/LuCI on their WAN.'),
    "fleet.implant": (
        'The same program misbehaves on several routers: something is spreading. Copy it off one '
        'router (`/proc/<pid>/exe`), look its sha256 up, isolate the listed devices, reflash '
        'them with `sysupgrade -n` and change their passwords and keys; block its addresses.'),
    "fleet.firmware_outlier": (
        'This router runs firmware its identical siblings do not: compare its `/rom` with a '
        "sibling's (`integrity.*` anomalies, the package database), and unless someone flashed a "
        'custom build on purpose, reflash it from a trusted image with `sysupgrade -n`.'),
}


def what_to_do(kind):
    """The advice for `kind` (markdown, as in the README), or the generic advice."""
    return WHAT_TO_DO.get(kind, GENERIC_WHAT_TO_DO)
