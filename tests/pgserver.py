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
import subprocess
import tempfile

from serverproc import HOST, ServerError, free_port, read_log, start_process, wait_until_ready

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


class PostgresError(ServerError):
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
        self.process = start_process(self._as_user + argv, self.log_file, new_session=False)
        try:
            wait_until_ready(self.process, self._accepts, START_TIMEOUT, "postgres",
                             self.log_tail, interval=0.1)
        except ServerError as exc:
            if self.process.poll() is None:
                self.close()
            raise PostgresError(str(exc)) from None
        return self

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
        return "".join(read_log(self.log_file).splitlines(True)[-lines:])

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
