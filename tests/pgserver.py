"""A real PostgreSQL server in a temp dir, for tests and benchmarks.

    server = PostgresServer()          # initdb into a fresh temp dir (as an unprivileged user
    server.start()                     # when run as root), start on a free loopback port
    url = server.new_database()        # postgresql://routerwatch@127.0.0.1:PORT/rw_3
    server.close()                     # stop the server (fast shutdown) and remove the dir

PostgreSQL refuses to run as root, so as root the data directory belongs to `nobody` and the
server runs as that user (runuser). Durability is switched off (fsync, synchronous_commit): a
test server that dies loses nothing anyone needs, and every commit would otherwise wait for the
disk. The pytest fixtures are in tests/conftest.py (`postgres_server`, session-wide).
"""
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

HOST = "127.0.0.1"
USER = "routerwatch"
START_TIMEOUT = 30.0
RUN_AS = "nobody"


def find_postgres_bin():
    """The directory holding initdb/postgres (Debian: /usr/lib/postgresql/<major>/bin), newest
    major first, or None."""
    on_path = shutil.which("initdb")
    if on_path:
        bindir = os.path.dirname(os.path.realpath(on_path))   # Debian's may be a symlink
        if os.access(os.path.join(bindir, "postgres"), os.X_OK):
            return bindir
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                            key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit()
                            else 0, reverse=True):
        if os.access(os.path.join(candidate, "initdb"), os.X_OK):
            return candidate
    return None


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class PostgresError(RuntimeError):
    pass


class PostgresServer:
    def __init__(self, bindir=None, port=None, settings=None):
        self.bindir = bindir or find_postgres_bin()
        if not self.bindir:
            raise PostgresError("PostgreSQL is not installed (postgresql-15)")
        self.port = port or free_port()
        self.host = HOST
        self.workdir = tempfile.mkdtemp(prefix="routerwatch-pg-")
        self.datadir = os.path.join(self.workdir, "data")
        self.log_file = os.path.join(self.workdir, "postgres.log")
        self.settings = dict({"fsync": "off", "synchronous_commit": "off",
                              "full_page_writes": "off", "max_connections": "200",
                              "shared_buffers": "64MB"}, **(settings or {}))
        self.process = None
        self._databases = 0
        self._as_user = []
        if os.geteuid() == 0:
            entry = pwd.getpwnam(RUN_AS)
            os.chown(self.workdir, entry.pw_uid, entry.pw_gid)
            self._as_user = ["runuser", "-u", RUN_AS, "--"]

    def _run(self, argv, **kwargs):
        return subprocess.run(self._as_user + argv, capture_output=True, text=True,
                              timeout=120, **kwargs)

    def start(self):
        if not os.path.exists(self.datadir):
            result = self._run([os.path.join(self.bindir, "initdb"), "-D", self.datadir,
                                "-U", USER, "--auth=trust", "--encoding=UTF8",
                                "--locale=C.UTF-8", "--no-sync"])
            if result.returncode != 0:
                raise PostgresError("initdb failed: %s" % (result.stderr or result.stdout))
        argv = [os.path.join(self.bindir, "postgres"), "-D", self.datadir, "-p", str(self.port),
                "-c", "listen_addresses=%s" % HOST,
                "-c", "unix_socket_directories=%s" % self.workdir]
        for name, value in self.settings.items():
            argv += ["-c", "%s=%s" % (name, value)]
        log = open(self.log_file, "ab")
        try:
            self.process = subprocess.Popen(self._as_user + argv, stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PostgresError("postgres exited: %s" % self.log_tail())
            if self._accepts():
                return self
            time.sleep(0.1)
        self.close()
        raise PostgresError("postgres did not accept connections in %.0f s" % START_TIMEOUT)

    def _accepts(self):
        import psycopg
        try:
            psycopg.connect(self.url(), connect_timeout=2).close()
            return True
        except psycopg.OperationalError:
            return False

    def url(self, database="postgres"):
        return "postgresql://%s@%s:%d/%s" % (USER, HOST, self.port, database)

    def new_database(self, name=None):
        """A new empty database; its URL."""
        import psycopg
        self._databases += 1
        name = name or "rw_%d" % self._databases
        with psycopg.connect(self.url(), autocommit=True) as con:
            con.execute('CREATE DATABASE "%s" TEMPLATE template0' % name)
        return self.url(name)

    def log_tail(self, lines=20):
        try:
            with open(self.log_file, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def close(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()          # SIGTERM: smart shutdown; then SIGINT: fast
            try:
                self.process.wait(2)
            except subprocess.TimeoutExpired:
                self.process.send_signal(2)
                try:
                    self.process.wait(10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(5)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc):
        self.close()
