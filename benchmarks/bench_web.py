"""Panel workspace under load: N concurrent users browsing a run on loopback (``ecins-link serve``).

Everything goes through the public interface: ``ecins-link synth`` (unless ``--project``), ``ecins-link run``,
``ecins-link users add`` and ``ecins-link serve``; the clients are plain HTTP (urllib, cookies, CSRF token),
each logging in as its own panel or analyst user and then, until the time is up, doing what a panel member
does: the worklist (first page, a later page, filtered by rule and sorted by score), a search by name, a case
page, a "known to partners?" lookup.  Every request's wall time is recorded by kind; p50/p95/p99 and
throughput are written to ``benchmarks/results/web_<persons>.json`` (with the load average: the machine is
shared).  Target (issue 19): 20 users on a 250k-person run, p95 <= 300 ms.

    nice .venv/bin/python benchmarks/bench_web.py --persons 20000 --users 20 --seconds 60
    nice .venv/bin/python benchmarks/bench_web.py --project COPY/project.toml --users 20 --think 0
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import write_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "bench password for loopback only"


def _cli(*args: str, stdin: str | None = None) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "ecins_link", *args], input=stdin, capture_output=True, text=True,
                          env=env, check=True)
    return proc.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class User:
    """One browser-less panel user: a cookie jar, the CSRF token, timed requests."""

    def __init__(self, base: str, name: str, times: dict[str, list[float]], errors: list[str], lock: threading.Lock) -> None:
        self.base, self.name, self.times, self.errors, self.lock = base, name, times, errors, lock
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def _token(self) -> str:
        return next((c.value for c in self.jar if c.name == "csrftoken"), "")

    def request(self, kind: str, path: str, data: dict | None = None) -> str:
        body = urllib.parse.urlencode({**data, "csrfmiddlewaretoken": self._token()}).encode() if data is not None else None
        started = time.perf_counter()
        try:
            with self.opener.open(self.base + path, data=body, timeout=60) as resp:
                text = resp.read().decode()
                status = resp.status
        except urllib.error.HTTPError as err:
            text, status = err.read().decode(errors="replace"), err.code
        elapsed = time.perf_counter() - started
        with self.lock:
            self.times.setdefault(kind, []).append(elapsed)
            if status >= 400:
                self.errors.append(f"{kind} {path} -> {status}")
        return text

    def login(self) -> None:
        self.request("login_page", "/login/")
        self.request("login", "/login/", {"username": self.name, "password": PASSWORD})


def _browse(user: User, stop: float, think: float, rng: random.Random, lookups: list[tuple]) -> None:
    user.login()
    cases: list[str] = []
    names: list[str] = []
    rules: list[str] = []
    while time.time() < stop:
        html = user.request("worklist", "/")
        cases = re.findall(r'href="/case/([0-9a-f]{16})/"', html) or cases
        names = re.findall(r'href="/case/[0-9a-f]{16}/">([^<]+)</a>', html) or names
        rules = re.findall(r'<option value="([a-z0-9_]+)"', html.split('name="rule"')[1].split("</select>")[0]) \
            if 'name="rule"' in html else rules
        pages = int(m.group(1)) if (m := re.search(r"page \d+ of (\d+)", html)) else 1
        time.sleep(rng.uniform(0, 2 * think))
        page_html = user.request("worklist_page", f"/?page={rng.randint(1, pages)}")
        cases = re.findall(r'href="/case/([0-9a-f]{16})/"', page_html) or cases
        if rules:
            user.request("worklist_filter", "/?" + urllib.parse.urlencode({"rule": rng.choice(rules), "sort": "score"}))
        time.sleep(rng.uniform(0, 2 * think))
        if names:
            user.request("search", "/?" + urllib.parse.urlencode({"q": rng.choice(names).split()[-1][:12]}))
        if cases:
            time.sleep(rng.uniform(0, 2 * think))
            user.request("case", f"/case/{rng.choice(cases)}/")
        if lookups and rng.random() < 0.3:
            fore, sur, dob = rng.choice(lookups)
            user.request("lookup", "/lookup/", {"forename": fore, "surname": sur, "dob": dob})
        time.sleep(rng.uniform(0, 2 * think))


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _lookups(project: Path, n: int = 200) -> list[tuple]:
    import duckdb

    from ecins_link.config import load_config

    con = duckdb.connect(str(load_config(project).store_path), read_only=True)
    try:
        rows = con.execute("SELECT forenames, surname, CAST(dob AS VARCHAR) FROM person_records WHERE dob IS NOT NULL "
                           "AND surname IS NOT NULL USING SAMPLE 1000 ROWS").fetchall()
    finally:
        con.close()
    return [(f or "", s, d) for f, s, d in rows][:n]


def worklist_at_scale(project: Path, n_cases: int) -> dict:
    """The worklist's filter / search / sort / page step (``data.worklist_page``) on the run's full-view cases
    repeated to ``n_cases`` rows (distinct ids), in process: what a worklist request costs beyond the page
    render when a partnership has 10k+ cases (the 20k-person towns this box can run have ~1k)."""
    import pandas as pd

    from ecins_link.config import load_config
    from ecins_link.report.views import full_view
    from ecins_link.web.data import SnapshotHolder, WorklistQuery, worklist_page
    from ecins_link.web.setup import web_dir_of

    config = load_config(project)
    snap = SnapshotHolder(config, web_dir_of(config)).get()
    view = full_view()
    base = snap.cases(view)
    copies = []
    for k in range(max(1, -(-n_cases // max(len(base), 1)))):
        part = base.copy()
        part["case"] = part["case"] + f"#{k}"
        part["case_id"] = part["case_id"] + f"{k:04d}"
        part["rank"] = part["rank"] + k * len(base)
        copies.append(part)
    cases = pd.concat(copies, ignore_index=True).head(n_cases)
    rule = str(cases["rules"].iloc[0]).split(";")[0]
    name = (cases["names"].iloc[0] or ["SMITH"])[0].split()[-1]
    queries = {"first_page": WorklistQuery(), "page_100": WorklistQuery(page=100),
               "rule_sorted_by_score": WorklistQuery(rule=rule, sort="score"),
               "search_name": WorklistQuery(q=name), "decision_none": WorklistQuery(decision="none"),
               "dates": WorklistQuery(date_from="2026-06-01", sort="last_date")}
    out = {"cases": len(cases)}
    for label, q in queries.items():
        times = []
        for _ in range(20):
            started = time.perf_counter()
            page, total = worklist_page(cases, q, {}, view)
            times.append(time.perf_counter() - started)
        out[label] = {"median_ms": round(statistics.median(times) * 1000, 2), "matching": total}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--project", type=Path, help="an existing project already run (a copy: users are added)")
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--think", type=float, default=1.0, help="mean think time between a user's steps (s)")
    ap.add_argument("--threads", type=int, default=8, help="server request threads")
    ap.add_argument("--name", default=None)
    ap.add_argument("--scale-cases", type=int, default=12000, help="worklist step timed on this many cases")
    args = ap.parse_args()
    record: dict = {"users": args.users, "seconds": args.seconds, "think_seconds": args.think,
                    "server_threads": args.threads, "load_before": [round(x, 2) for x in os.getloadavg()]}
    work = Path(tempfile.mkdtemp(prefix="bench_web_"))
    try:
        if args.project:
            project = args.project
            record["project"] = str(project)
        else:
            town = work / "town"
            started = time.perf_counter()
            _cli("synth", "--out", str(town), "--persons", str(args.persons), "--seed", str(args.seed))
            record["synth_seconds"] = round(time.perf_counter() - started, 1)
            project = town / "project.toml"
            started = time.perf_counter()
            _cli("run", str(project), "--out", str(town / "output"))
            record["run_seconds"] = round(time.perf_counter() - started, 1)
            record["persons"] = args.persons
            record["seed"] = args.seed
        from ecins_link.config import load_config

        purposes = sorted(load_config(project).purposes)
        users = []
        for i in range(args.users):
            name = f"bench{i:02d}"
            purpose = purposes[i % len(purposes)] if purposes and i % 4 else None  # every 4th an analyst
            _cli("users", "add", str(project), name, "--role", "panel" if purpose else "analyst",
                 *(["--purpose", purpose] if purpose else []), "--password-stdin", stdin=PASSWORD + "\n")
            users.append(name)
        port = _free_port()
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        started = time.perf_counter()
        server = subprocess.Popen([sys.executable, "-m", "ecins_link", "serve", str(project), "--port", str(port),
                                   "--threads", str(args.threads)], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(600):
                try:
                    urllib.request.urlopen(base + "/healthz", timeout=1).read()
                    break
                except OSError:
                    time.sleep(0.2)
            record["server_start_seconds"] = round(time.perf_counter() - started, 1)  # incl. snapshot publication
            snaps = list((Path(load_config(project).store_path).parent / "web" / "snapshots").glob("*.duckdb"))
            record["snapshot_mb"] = round(sum(p.stat().st_size for p in snaps) / 1e6, 1)
            times: dict[str, list[float]] = {}
            errors: list[str] = []
            lock = threading.Lock()
            lookups = _lookups(project)
            # warm-up: each purpose's worklist is built once per snapshot (first request of the purpose)
            warm = User(base, users[0], {}, [], lock)
            warm.login()
            started = time.perf_counter()
            warm.request("warm", "/")
            for name in users[1:1 + len(purposes)]:
                w = User(base, name, {}, [], lock)
                w.login()
                w.request("warm", "/")
            record["first_worklist_per_purpose_seconds"] = round(time.perf_counter() - started, 2)
            import psutil

            proc = psutil.Process(server.pid)
            cpu_before = proc.cpu_times()
            stop = time.time() + args.seconds
            threads = [threading.Thread(target=_browse, args=(User(base, n, times, errors, lock), stop, args.think,
                                                               random.Random(i), lookups)) for i, n in enumerate(users)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            cpu_after = proc.cpu_times()
            record["server_cpu_seconds"] = round((cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system), 2)
        finally:
            server.terminate()
            server.wait(timeout=30)
        record["worklist_step_at_scale"] = worklist_at_scale(project, args.scale_cases)
        pages = {k: v for k, v in times.items() if k not in ("login_page", "login")}
        every = [x for v in pages.values() for x in v]
        record["requests"] = len(every)
        record["requests_per_second"] = round(len(every) / args.seconds, 1)
        # CPU the server spent per request (logins included: argon2 is deliberately costly): a load-independent
        # figure on a shared box, and the capacity it implies on otherwise idle cores
        served = sum(len(v) for v in times.values())
        record["server_cpu_ms_per_request"] = round(1000 * record["server_cpu_seconds"] / max(served, 1), 1)
        record["implied_capacity_requests_per_second_per_idle_core"] = round(
            served / max(record["server_cpu_seconds"], 1e-9), 1)
        record["errors"] = errors[:20]
        record["error_count"] = len(errors)
        record["all_pages_ms"] = {"p50": round(_pct(every, 0.5) * 1000, 1), "p95": round(_pct(every, 0.95) * 1000, 1),
                                  "p99": round(_pct(every, 0.99) * 1000, 1), "max": round(max(every) * 1000, 1)}
        record["by_kind_ms"] = {k: {"n": len(v), "p50": round(_pct(v, 0.5) * 1000, 1),
                                    "p95": round(_pct(v, 0.95) * 1000, 1), "mean": round(statistics.mean(v) * 1000, 1)}
                                for k, v in sorted(times.items())}
        record["target_p95_ms"] = 300
        record["target_met_at_this_scale"] = record["all_pages_ms"]["p95"] <= 300 and not errors
        record["load_after"] = [round(x, 2) for x in os.getloadavg()]
        name = args.name or (f"web_{args.persons}" if not args.project else f"web_{args.project.parent.name}")
        write_results(name, record)
        print(json.dumps(record, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
