#!/usr/bin/env python3
"""metrics.py — ftvmd's Prometheus endpoint scraped by a real Prometheus server.

Two daemons on loopback, A and B, each with --metrics. On A a plain VM ("solo", ftvm run) and the
primary of an FT pair ("pair"); on B the pair's backup. All run the bare-metal tick.elf, whose
console output every 100 ms of guest time is an output the Output Rule holds. Checked:
  - the exposition passes `promtool check metrics` and answers only GET /metrics;
  - Prometheus (Debian's, a temporary config, scraping both daemons every second) sees through its
    HTTP query API: the targets up, solo's instructions growing, the pair protected, log bytes on
    both sides, outputs held and released through the hold-time histogram;
  - the primary destroyed on A: B's backup goes live, and Prometheus sees the failover
    (ftvm_failovers_total 1, ftvm_ft_state alone, a last failover gap under the bound).

usage: metrics.py FTVMD FTVM TICK_ELF   (TICK_ELF "-", or no prometheus/promtool: skip, 77)
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

from daemon_test import check, domain, free_port, ft_metadata, outcome, wait_for

FTVMD, FTVM, TICK = sys.argv[1], sys.argv[2], sys.argv[3]


def http(url, method="GET"):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, "", ""
    except OSError:
        return 0, "", ""


class Daemon:
    def __init__(self, tmp, name):
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir)
        self.sock = os.path.join(self.dir, "d.sock")
        self.port = free_port()
        self.log = open(os.path.join(self.dir, "ftvmd.log"), "w")
        self.proc = subprocess.Popen([FTVMD, "--state-dir", os.path.join(self.dir, "state"), "--socket", self.sock,
                                      "--metrics", f"127.0.0.1:{self.port}", "--ftvm", FTVM, "--poll-ms", "100"],
                                     stdout=self.log, stderr=self.log)
        check(wait_for(lambda: os.path.exists(self.sock), 20), f"ftvmd {name} serves")

    def ftvm(self, *args):
        r = subprocess.run([FTVM, *args, "--daemon-socket", self.sock], capture_output=True, text=True, timeout=60)
        if r.returncode:
            print(f"ftvm {' '.join(args)}: {r.stderr.strip()}", flush=True)
        return r.returncode, r.stdout

    def define_start(self, name, xml):
        path = os.path.join(self.dir, name + ".xml")
        with open(path, "w") as f:
            f.write(xml)
        return self.ftvm("define", path)[0] == 0 and self.ftvm("start", name)[0] == 0

    def stats(self, name):
        rc, out = self.ftvm("vmstats", name, "--json")
        try:
            return json.loads(out).get("stats", {}) if rc == 0 else {}
        except ValueError:
            return {}

    def metrics(self):
        return http(f"http://127.0.0.1:{self.port}/metrics")


class Prometheus:
    def __init__(self, tmp, targets):
        self.port = free_port()
        cfg = os.path.join(tmp, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n"
                    "scrape_configs:\n  - job_name: ftvmd\n    static_configs:\n"
                    f"      - targets: [{', '.join(repr(t) for t in targets)}]\n")
        self.log = open(os.path.join(tmp, "prometheus.log"), "w")
        self.proc = subprocess.Popen(["prometheus", f"--config.file={cfg}",
                                      f"--storage.tsdb.path={os.path.join(tmp, 'tsdb')}",
                                      f"--web.listen-address=127.0.0.1:{self.port}"],
                                     stdout=self.log, stderr=self.log)
        check(wait_for(lambda: http(f"http://127.0.0.1:{self.port}/-/ready")[0] == 200, 60), "Prometheus is ready")

    def query(self, q):
        """The instant vector of q as {frozenset(labels): value}."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
        code, _, body = http(url)
        if code != 200:
            return {}
        data = json.loads(body)
        return {frozenset(r["metric"].items()): float(r["value"][1]) for r in data["data"]["result"]}

    def value(self, q):
        """The single value of q, or None."""
        r = self.query(q)
        return next(iter(r.values())) if len(r) == 1 else None


def main():
    if TICK == "-" or not shutil.which("prometheus") or not shutil.which("promtool"):
        print("needs the bare-metal programs and Debian's prometheus: skipped")
        return 77
    tmp = tempfile.mkdtemp(prefix="ftvmd-metrics-")
    procs = []
    a = b = prom = None
    try:
        a, b = Daemon(tmp, "a"), Daemon(tmp, "b")
        procs += [a.proc, b.proc]
        port = free_port()
        ft = ft_metadata(FTVM, tmp, "pair")
        check(a.define_start("solo", domain("solo", TICK)), "solo started on A")
        check(b.define_start("pair", domain("pair", TICK, ft % f"listen='127.0.0.1:{port}'")), "pair's backup started on B")
        check(wait_for(lambda: os.path.exists(os.path.join(b.dir, "state", "run", "pair.sock")), 20),
              "the backup listens")
        check(a.define_start("pair", domain("pair", TICK, ft % f"peer='127.0.0.1:{port}'")), "pair's primary started on A")
        check(wait_for(lambda: a.stats("pair").get("ft_state") == 1), "the pair is protected")
        check(wait_for(lambda: a.stats("pair").get("output_hold_count", 0) > 0), "the primary held outputs")

        code, ctype, text = a.metrics()
        check(code == 200 and ctype.startswith("text/plain; version=0.0.4"), f"GET /metrics: {code} {ctype}")
        with open(os.path.join(tmp, "a.prom"), "w") as f:
            f.write(text)
        r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        check(r.returncode == 0, f"promtool check metrics: {(r.stdout + r.stderr).strip() or 'clean'}")
        for fam in ("ftvm_vm_up", "ftvm_ft_state", "ftvm_backup_lag_seconds", "ftvm_log_bytes_total",
                    "ftvm_log_records_total", "ftvm_outputs_held", "ftvm_output_hold_seconds_bucket",
                    "ftvm_failovers_total", "ftvm_last_failover_gap_seconds", "ftvm_instructions_total"):
            check(f"\n{fam}{{" in text, f"the exposition has {fam}")
        check(http(f"http://127.0.0.1:{a.port}/other")[0] == 404, "another path: 404")
        check(http(f"http://127.0.0.1:{a.port}/metrics", "POST")[0] == 405, "POST: 405")

        prom = Prometheus(tmp, [f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"])
        procs.append(prom.proc)
        check(wait_for(lambda: len(prom.query('up{job="ftvmd"} == 1')) == 2), "Prometheus scrapes both daemons")
        check(wait_for(lambda: (prom.value('ftvm_instructions_total{vm="solo"}') or 0) > 0),
              "solo's instructions, through Prometheus")
        check(wait_for(lambda: (prom.value('rate(ftvm_instructions_total{vm="solo"}[5s])') or 0) > 0),
              "and growing")
        check(wait_for(lambda: prom.value('ftvm_ft_state{vm="pair",role="primary",state="protected"}') == 1),
              "the pair is protected on the primary")
        check(wait_for(lambda: (prom.value('ftvm_log_bytes_total{vm="pair",role="backup"}') or 0) > 0),
              "the backup receives log bytes")
        check(wait_for(lambda: (prom.value('ftvm_output_hold_seconds_count{vm="pair"}') or 0) > 0),
              "the hold-time histogram counts released outputs")
        check(wait_for(lambda: prom.value('histogram_quantile(0.5, ftvm_output_hold_seconds_bucket{vm="pair"})')
                       is not None), "and Prometheus computes its median")
        lag = prom.value('ftvm_backup_lag_seconds{vm="pair",role="primary"}')
        check(lag is not None and 0 <= lag < 5, f"the backup lag in seconds: {lag}")

        # Failover: the primary's process killed; the backup goes live on B.
        check(a.ftvm("destroy", "pair")[0] == 0, "the primary destroyed on A")
        check(wait_for(lambda: prom.value('ftvm_failovers_total{vm="pair"}') == 1, 60),
              "Prometheus sees the failover on B")
        check(wait_for(lambda: prom.value('ftvm_ft_state{vm="pair",role="alone",state="alone"}') == 1),
              "B's VM runs alone")
        gap = prom.value('ftvm_last_failover_gap_seconds{vm="pair"}')
        # The killed primary's socket closes, so the backup need not wait for the 0.4 s timeout.
        check(gap is not None and 0 < gap < 20, f"the last failover gap: {gap} s")
        rc, out = b.ftvm("events")
        check("pair resumed (failed-over)" in out, f"B's events show the failover: {out.strip()}")
    finally:
        for d in (a, b):
            if d:
                d.ftvm("destroy", "solo")
                d.ftvm("destroy", "pair")
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for d in (a, b):
            if d:
                check(d.proc.returncode == 0, f"ftvmd ends with status 0 on SIGTERM ({d.proc.returncode})")
    return outcome(tmp)


if __name__ == "__main__":
    sys.exit(main())
