"""A real Prometheus server on a free loopback port, scraping given targets every second, for
tests of the collector's /metrics endpoint.

    server = PrometheusServer(tmp_path, targets=["127.0.0.1:9123"]).start()  # /-/ready answered
    server.query('routerwatch_collector_messages_received_total')  # -> {labels: value, ...}
    server.close()

Only the binary is needed: ci/install-system-packages.sh unpacks Debian's package into
~/.cache/routerwatch-prometheus (ROUTERWATCH_PROMETHEUS_DIR) instead of installing the service.
"""
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from serverproc import (HOST, ServerError, find_binary, free_port, kill_process, read_log,
                        start_process, wait_until_ready)

START_TIMEOUT = 30.0
JOB = "routerwatch-collector"


def find_prometheus():
    cache = Path(os.environ.get("ROUTERWATCH_PROMETHEUS_DIR")
                 or Path.home() / ".cache" / "routerwatch-prometheus")
    return find_binary("prometheus", str(cache / "root" / "usr" / "bin" / "prometheus"),
                       "/usr/bin/prometheus")


class PrometheusServer:
    def __init__(self, workdir, targets, binary=None, scrape_interval="1s"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.binary = binary or find_prometheus()
        if not self.binary:
            raise ServerError("prometheus is not installed")
        self.host = HOST
        self.port = free_port()
        self.log_file = self.workdir / "prometheus.log"
        self.config = self.workdir / "prometheus.yml"
        # JSON is YAML: no YAML writer needed
        self.config.write_text(json.dumps({
            "global": {"scrape_interval": scrape_interval, "scrape_timeout": scrape_interval,
                       "evaluation_interval": scrape_interval},
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": list(targets)}]}],
        }, indent=1))
        self.process = None

    def start(self):
        self.process = start_process(
            [self.binary, "--config.file=%s" % self.config,
             "--storage.tsdb.path=%s" % (self.workdir / "data"),
             "--web.listen-address=%s:%d" % (self.host, self.port)], self.log_file)
        try:
            wait_until_ready(self.process, self.ready, START_TIMEOUT, "prometheus",
                             lambda: read_log(self.log_file, tail=3000), interval=0.1)
        except ServerError:
            self.close()
            raise
        return self

    def _get(self, path, params=None):
        url = "http://%s:%d%s" % (self.host, self.port, path)
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()

    def ready(self):
        try:
            return self._get("/-/ready")[0] == 200
        except (OSError, urllib.error.URLError):
            return False

    def query(self, expr):
        """An instant query through /api/v1/query: {frozenset(labels without __name__): value}."""
        status, body = self._get("/api/v1/query", {"query": expr})
        answer = json.loads(body)
        if status != 200 or answer.get("status") != "success":
            raise ServerError("prometheus query %r failed: %s" % (expr, body[:500]))
        result = {}
        for series in answer["data"]["result"]:
            labels = {k: v for k, v in series["metric"].items() if k != "__name__"}
            result[frozenset(labels.items())] = float(series["value"][1])
        return result

    def targets_health(self):
        """{scrape url: health} of the active targets ("up", "down", "unknown")."""
        answer = json.loads(self._get("/api/v1/targets")[1])
        return {t["scrapeUrl"]: t["health"] for t in answer["data"]["activeTargets"]}

    def close(self):
        process, self.process = self.process, None
        kill_process(process, graceful=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
