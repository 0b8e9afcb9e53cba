"""Latency and throughput of the home endpoint, in process and over HTTP behind Gunicorn.

Prepares a fresh SQLite database in a temporary directory the way ``openflix demo --no-serve``
(``make run``) does — the bundled MovieLens latest-small imported, the default model trained and
promoted — plus an operator token, with the rate limit raised so it never refuses.  Then:

* in process: ``create_app()``'s test client asks ``/members/{id}/home`` of every member with no
  page cached (every page folded in and scored), then again (pages cached until the member's next
  event), and the service call alone (``platform.home.home``) builds every page once more;
* over HTTP: Gunicorn with a fixed number of workers and threads, loaded by ``wrk`` for a fixed
  duration against ``/healthz`` (no token), ``/whoami`` (a token, like home) and
  ``/members/{id}/home`` rotating over every member.

The tables go to stdout and to ``docs/benchmarks.md`` (section "API").

    python benchmarks/api.py [--workers 2] [--threads 1] [--connections 16] [--duration 20]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from _doc import write_section
from openflix.cli.platform import gunicorn_argv

ROOT = Path(__file__).resolve().parents[1]
MARK = "## API"
WARMUP = "/members/{id}/home, first run (pages being built)"
WRK = shutil.which("wrk") or "/usr/bin/wrk"
RATE_LIMIT = "100000000/minute"
P99_TARGET_MS = 20.0
RATIO_TARGET = 0.7


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- set-up -------------------------------------------------------------------------------------


def bench_env(tmp: Path) -> dict[str, str]:
    """The ``OPENFLIX_*`` variables of every process of the run: a database and artifacts in ``tmp``."""
    return {
        "OPENFLIX_DATABASE_URL": f"sqlite:///{tmp / 'openflix.db'}",
        "OPENFLIX_ARTIFACTS": str(tmp / "artifacts"),
        "OPENFLIX_RATE_LIMIT": RATE_LIMIT,
        "OPENFLIX_REDIS_URL": "",
        # A blank (not empty: empty means the default) retrain time: no nightly retrain mid-run.
        "OPENFLIX_RETRAIN_AT": "off",
        "OPENFLIX_FILL": "off",
        # The appliances report once, at set-up; keep those reports fresh for the whole run.
        "OPENFLIX_HEALTH_STALE_S": "86400",
        "TMPDIR": str(tmp / "tmp"),
    }


def prepare(tmp: Path, env: dict[str, str]) -> tuple[str, list[int]]:
    """Run ``openflix demo --no-serve`` in ``tmp``; return an operator token and every member id."""
    from openflix.settings import bundled_data

    (tmp / "metrics").mkdir()
    (tmp / "tmp").mkdir()
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "openflix", "demo", "--no-serve", "--data", str(bundled_data())],
        cwd=tmp,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        log(proc.stdout + proc.stderr)
        raise SystemExit(f"openflix demo --no-serve failed (exit {proc.returncode})")
    for line in proc.stdout.splitlines():
        if line.startswith(("imported", "trained")):
            log(f"  {line}")
    log(f"prepared the database in {time.perf_counter() - t0:.1f} s")

    from sqlalchemy import select

    from openflix.store.db import connect, translating
    from openflix.store.schema import Member
    from openflix.store.tokens import create_token

    engine = connect(env["OPENFLIX_DATABASE_URL"])
    with translating(engine), engine.begin() as conn:
        _, token = create_token(conn, "operator", name="benchmarks/api.py")
        members = [int(m) for m in conn.scalars(select(Member.id).order_by(Member.id))]
    engine.dispose()
    return token, members


def steer_paths(env: dict[str, str], n: int = 5_000, seed: int = 7) -> list[str]:
    """Steering requests like playbacks: 80% from ISP prefixes, 15% from region blocks, 5% from nowhere;
    titles drawn by their number of events in the store."""
    import ipaddress

    import numpy as np
    from sqlalchemy import func, select

    from openflix.store.db import connect
    from openflix.store.schema import Event, RegionPrefix, SitePrefix

    engine = connect(env["OPENFLIX_DATABASE_URL"])
    with engine.connect() as conn:
        announced = sorted(set(conn.scalars(select(SitePrefix.prefix))))
        regions = sorted(conn.scalars(select(RegionPrefix.prefix)))
        counts = conn.execute(select(Event.title_id, func.count()).group_by(Event.title_id)).all()
    engine.dispose()
    rng = np.random.default_rng(seed)
    titles = np.array([t for t, _ in counts])
    weights = np.array([c for _, c in counts], dtype=float)
    picks = rng.choice(titles, size=n, p=weights / weights.sum())

    def address(prefixes: list[str]) -> str:
        net = ipaddress.ip_network(prefixes[int(rng.integers(len(prefixes)))])
        return str(net[int(rng.integers(1, min(net.num_addresses - 1, 2**32)))])

    paths = []
    for title in picks:
        u = rng.random()
        ip = (
            address(announced)
            if u < 0.8
            else address(regions)
            if u < 0.95
            else f"203.0.113.{rng.integers(1, 255)}"
        )
        paths.append(f"/cdn/steer?ip={ip}&title={title}")
    return paths


# --- in process ---------------------------------------------------------------------------------


def percentiles(ms: Sequence[float]) -> dict[str, float]:
    a = np.asarray(ms, dtype=float)
    return {
        "n": float(len(a)),
        "p50": float(np.percentile(a, 50)),
        "p90": float(np.percentile(a, 90)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
    }


def timed(call: Callable[[int], object], members: Sequence[int]) -> list[float]:
    out = []
    for m in members:
        t0 = time.perf_counter()
        call(m)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def in_process(token: str, members: Sequence[int]) -> dict[str, dict[str, float]]:
    """Every member's home through the test client, built and cached; then through the service alone (ms).

    "Built" passes start with no page cached, so every page is folded in and
    scored; the "cached" pass asks again, as a member reloading the page does.
    """
    from openflix.api import create_app, prepare
    from openflix.settings import Settings

    app = create_app(Settings.from_env())
    prepare(app)  # as every Gunicorn worker does before its first request
    platform_ = app.extensions["openflix"]
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    bad: list[tuple[int, int]] = []

    def via_http(member: int) -> None:
        response = client.get(f"/members/{member}/home", headers=headers)
        if response.status_code != 200:
            bad.append((member, response.status_code))

    t0 = time.perf_counter()
    via_http(members[0])
    first = (time.perf_counter() - t0) * 1000
    log(f"in process: first (warm-up) request {first:.0f} ms")
    home = platform_.home
    home.forget(pages_only=True)
    client_ms = timed(via_http, members)
    cached_ms = timed(via_http, members)
    if bad:
        raise SystemExit(f"in process: {len(bad)} requests failed, e.g. member/status {bad[:5]}")
    home.forget(pages_only=True)
    service_ms = timed(lambda m: home.home(m), members)
    platform_.close()
    return {
        "test client, page built": percentiles(client_ms),
        "test client, page cached": percentiles(cached_ms),
        "service call, page built": percentiles(service_ms),
    }


# --- over HTTP ----------------------------------------------------------------------------------


@dataclass
class WrkResult:
    rps: float
    requests: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int
    socket_detail: str
    server_cpu_s: float = float("nan")
    """CPU seconds the Gunicorn workers spent during the run (user + system)."""
    client_cpu_s: float = float("nan")
    """CPU seconds wrk spent during the run."""

    @property
    def server_us(self) -> float:
        """Workers' CPU per request, in µs: the server's cost, apart from how busy the machine was."""
        return 1e6 * self.server_cpu_s / self.requests if self.requests else float("nan")

    @property
    def client_us(self) -> float:
        return 1e6 * self.client_cpu_s / self.requests if self.requests else float("nan")


UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def to_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)([a-z]+)", text).groups()  # type: ignore[union-attr]
    return float(value) * UNITS_MS[unit]


def parse_wrk(output: str) -> WrkResult:
    """The figures of ``wrk --latency``'s report."""

    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise ValueError(f"wrk's report has no {pattern!r}:\n{output}")
        return match

    socket_errors = re.search(r"Socket errors: (.*)$", output, re.MULTILINE)
    detail = socket_errors.group(1).strip() if socket_errors else "none"
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return WrkResult(
        rps=float(find(r"^Requests/sec:\s+([\d.]+)").group(1)),
        requests=int(find(r"^\s*(\d+) requests in").group(1)),
        p50_ms=to_ms(find(r"^\s+50%\s+(\S+)").group(1)),
        p99_ms=to_ms(find(r"^\s+99%\s+(\S+)").group(1)),
        max_ms=to_ms(find(r"^\s+Latency\s+\S+\s+\S+\s+(\S+)").group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in re.findall(r"\d+", detail)),
        socket_detail=detail,
    )


LUA = """-- generated by benchmarks/api.py: every path in turn, per thread from its own offset
local paths = {%(paths)s}
local n = #paths
local threads = 0
local i = 0
wrk.headers["Authorization"] = "Bearer %(token)s"

function setup(thread)
  thread:set("offset", threads)
  threads = threads + 1
end

function init(args)
  i = ((offset or 0) * 7919) %% n
end

request = function()
  i = i %% n + 1
  return wrk.format("GET", paths[i])
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def refused(base: str) -> list[tuple[str, str, int]]:
    """``(route, status, count)`` of every answer other than 2xx/3xx so far, as the workers' own
    metrics count them (wrk counts them but does not say which)."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        text = response.read().decode()
    pattern = r"^openflix_http_requests_total\{([^}]*)\} ([0-9.e+]+)$"
    out = []
    for labels, value in re.findall(pattern, text, re.MULTILINE):
        label = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if not label.get("status", "").startswith(("2", "3")) and float(value) > 0:
            out.append((label.get("route", "?"), label.get("status", "?"), int(float(value))))
    return sorted(out)


def get(url: str, token: str | None = None, timeout: float = 10.0) -> int:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def start_gunicorn(
    tmp: Path, env: dict[str, str], bind: str, workers: int, threads: int
) -> subprocess.Popen[bytes]:
    cmd = gunicorn_argv()
    server_env = {
        **os.environ,
        **env,
        "OPENFLIX_BIND": bind,
        "OPENFLIX_WORKERS": str(workers),
        "OPENFLIX_THREADS": str(threads),
        "OPENFLIX_LOG_LEVEL": "warning",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
    }
    server_env.pop("GUNICORN_CMD_ARGS", None)
    with open(tmp / "gunicorn.log", "wb") as logfile:
        return subprocess.Popen(
            cmd, cwd=tmp, env=server_env, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop_gunicorn(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    with contextlib.suppress(ProcessLookupError):  # workers left behind by a master that died
        os.killpg(proc.pid, signal.SIGKILL)


def wait_ready(base: str, proc: subprocess.Popen[bytes], tmp: Path, timeout: float = 180.0) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            log((tmp / "gunicorn.log").read_text(errors="replace")[-4000:])
            raise SystemExit(f"gunicorn exited with {proc.returncode} before it was ready")
        if get(f"{base}/readyz", timeout=2) == 200:
            return time.perf_counter() - t0
        time.sleep(0.25)
    raise SystemExit(f"gunicorn not ready after {timeout:.0f} s; see {tmp / 'gunicorn.log'}")


def combine(parts: Sequence[WrkResult], seconds: float) -> WrkResult:
    """Rounds of one endpoint as one result: total requests over total time; latency: median of rounds."""
    requests = sum(p.requests for p in parts)
    errors = sum(p.socket_errors for p in parts)
    return WrkResult(
        rps=requests / (seconds * len(parts)),
        requests=requests,
        p50_ms=float(np.median([p.p50_ms for p in parts])),
        p99_ms=float(np.median([p.p99_ms for p in parts])),
        max_ms=max(p.max_ms for p in parts),
        non_2xx=sum(p.non_2xx for p in parts),
        socket_errors=errors,
        socket_detail="none" if errors == 0 else "; ".join(p.socket_detail for p in parts if p.socket_errors),
        server_cpu_s=sum(p.server_cpu_s for p in parts),
        client_cpu_s=sum(p.client_cpu_s for p in parts),
    )


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds of the processes ``pids`` so far (Linux ``/proc``; NaN elsewhere)."""
    total = 0
    try:
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return float("nan")
    return total / os.sysconf("SC_CLK_TCK")


def worker_pids(master: int) -> list[int]:
    """The Gunicorn master's worker processes (Linux ``/proc``)."""
    children = Path(f"/proc/{master}/task/{master}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


def measured_wrk(
    url: str, args: argparse.Namespace, duration: float, script: Path, workers: Sequence[int]
) -> tuple[str, WrkResult]:
    """One wrk run, its report and figures, with the CPU the workers and wrk spent meanwhile."""
    server0, client0 = cpu_seconds(workers), os.times()
    output = run_wrk(url, args, duration, script)
    server1, client1 = cpu_seconds(workers), os.times()
    client = (client1.children_user + client1.children_system) - (
        client0.children_user + client0.children_system
    )
    return output, replace(parse_wrk(output), server_cpu_s=server1 - server0, client_cpu_s=client)


def run_wrk(
    url: str, args: argparse.Namespace, duration: float, script: Path | None = None, token: str | None = None
) -> str:
    cmd = [WRK, f"-t{args.wrk_threads}", f"-c{args.connections}", f"-d{duration:g}s", "--latency"]
    if script is not None:
        cmd += ["-s", str(script)]
    if token is not None:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    proc = subprocess.run([*cmd, url], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"wrk failed (exit {proc.returncode}): {proc.stderr}{proc.stdout}")
    return proc.stdout


def over_http(
    tmp: Path, env: dict[str, str], token: str, members: Sequence[int], args: argparse.Namespace
) -> tuple[dict[str, WrkResult], list[tuple[str, str, int]]]:
    """Every endpoint's wrk figures, and every answer other than 2xx/3xx (route, status, count)."""
    script = tmp / "home.lua"
    script.write_text(LUA % {"paths": ",".join(f'"/members/{m}/home"' for m in members), "token": token})
    steer = tmp / "steer.lua"
    steer.write_text(LUA % {"paths": ",".join(f'"{p}"' for p in steer_paths(env)), "token": token})
    bind = f"127.0.0.1:{free_port()}"
    base = f"http://{bind}"
    proc = start_gunicorn(tmp, env, bind, args.workers, args.threads)
    try:
        log(f"gunicorn: {args.workers} workers x {args.threads} threads on {bind}")
        log(f"  /readyz 200 after {wait_ready(base, proc, tmp):.1f} s")
        t0 = time.perf_counter()
        status = get(f"{base}/members/{members[0]}/home", token)
        log(f"  first home request: {status} in {(time.perf_counter() - t0) * 1000:.0f} ms")
        if status != 200:
            raise SystemExit(f"GET /members/{members[0]}/home answered {status}")
        results = {}
        workers = worker_pids(proc.pid)
        if args.warmup > 0:  # every worker builds every member's page once
            log(f"  warm-up: wrk on the home endpoint for {args.warmup:g} s")
            results[WARMUP] = warm = measured_wrk(base + "/", args, args.warmup, script, workers)[1]
            log(f"    {warm.rps:,.0f} requests/s, p99 {warm.p99_ms:.1f} ms, max {warm.max_ms:.0f} ms")
        # Every endpoint through the same kind of Lua script (wrk's per-request Lua costs client CPU on
        # these shared cores, so a script-less trivial endpoint would be favoured).
        trivial = {}
        for name in ("healthz", "whoami"):
            trivial[name] = tmp / f"{name}.lua"
            trivial[name].write_text(LUA % {"paths": f'"/{name}"', "token": token})
        endpoints = [
            ("/healthz", base + "/", trivial["healthz"]),
            ("/whoami", base + "/", trivial["whoami"]),
            ("/members/{id}/home", base + "/", script),
            ("/cdn/steer", base + "/", steer),
        ]
        # Interleaved rounds, the order rotating each round: two processes share 2 cores, and one
        # long run per endpoint would hand whichever ran in a noisy minute the noise.
        rounds: dict[str, list[WrkResult]] = {name: [] for name, *_ in endpoints}
        slice_s = args.duration / args.rounds
        for k in range(args.rounds):
            for name, url, lua in endpoints[k % len(endpoints) :] + endpoints[: k % len(endpoints)]:
                output, result = measured_wrk(url, args, slice_s, lua, workers)
                (tmp / f"wrk-{k}-{name.strip('/').replace('/', '_')}.txt").write_text(output)
                rounds[name].append(result)
        for name, parts in rounds.items():
            results[name] = r = combine(parts, slice_s)
            log(
                f"  wrk {name}: {args.rounds} x {slice_s:g} s: {r.rps:,.0f} requests/s "
                f"(rounds {', '.join(f'{p.rps:,.0f}' for p in parts)}), p50 {r.p50_ms:.2f} ms, "
                f"p99 {r.p99_ms:.2f} ms, non-2xx/3xx {r.non_2xx}, socket errors {r.socket_detail}"
            )
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited with {proc.returncode} during the run")
        refusals = refused(base)
        for route, code, count in refusals:
            log(f"  answered {code} {count:,} times on {route}")
        errors = [line for line in (tmp / "gunicorn.log").read_text(errors="replace").splitlines() if line]
        if errors:
            log(f"  gunicorn logged {len(errors)} lines, the last ones:")
            for line in errors[-10:]:
                log(f"    {line}")
        return results, refusals
    finally:
        stop_gunicorn(proc)


# --- report -------------------------------------------------------------------------------------


def versions() -> str:
    import gunicorn

    wrk = subprocess.run([WRK, "--version"], capture_output=True, text=True, check=False)
    wrk_version = (wrk.stdout + wrk.stderr).split()[1] if (wrk.stdout + wrk.stderr).split() else "?"
    return f"Python {platform.python_version()}, Gunicorn {gunicorn.__version__}, wrk {wrk_version}"


def section(
    args: argparse.Namespace,
    command: str,
    n_members: int,
    model: str,
    local: dict[str, dict[str, float]],
    http: dict[str, WrkResult],
    refusals: Sequence[tuple[str, str, int]],
    load: tuple[float, float, float],
) -> str:
    cores = os.cpu_count()
    rows = [
        "| path | requests | p50 ms | p90 ms | p99 ms | max ms | p99 ≤ 20 ms |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, p in local.items():
        ok = "yes" if p["p99"] <= P99_TARGET_MS else "**no**"
        rows.append(
            f"| {name} | {int(p['n']):,} | {p['p50']:.2f} | {p['p90']:.2f} | {p['p99']:.2f} | "
            f"{p['max']:.2f} | {ok if name.startswith('test client') else ''} |"
        )
    local_table = "\n".join(rows)
    rows = [
        "| endpoint | requests/s | requests | p50 ms | p99 ms | max ms | non-2xx/3xx | socket errors "
        "| workers' CPU µs/request | wrk's CPU µs/request |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for name, r in http.items():
        rows.append(
            f"| `{name}` | {r.rps:,.0f} | {r.requests:,} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
            f"{r.max_ms:.1f} | {r.non_2xx} | {r.socket_detail} | {r.server_us:,.0f} | {r.client_us:,.0f} |"
        )
    http_table = "\n".join(rows)
    health, whoami, home = http["/healthz"], http["/whoami"], http["/members/{id}/home"]  # steady state
    steer = http["/cdn/steer"]
    ratio = home.rps / health.rps if health.rps else float("nan")
    ratio_auth = home.rps / whoami.rps if whoami.rps else float("nan")
    cpu_ratio = health.server_us / home.server_us
    cpu_ratio_auth = whoami.server_us / home.server_us
    errors = sum(r.non_2xx + r.socket_errors for r in http.values())
    verdict = "met" if ratio >= RATIO_TARGET and errors == 0 else "**not met**"
    verdict_auth = "met" if ratio_auth >= RATIO_TARGET and errors == 0 else "**not met**"
    refused_text = ", ".join(f"`{route}` {code} × {count:,}" for route, code, count in refusals) or "none"
    return (
        f"{MARK}\n\n"
        f"Produced by `make bench-api` (`{command}`) on {datetime.now(UTC):%Y-%m-%d}; {versions()}; "
        f"{cores} cores, load average {load[0]:.2f} when the run started. The database is a fresh SQLite "
        "file set up as `openflix demo --no-serve` does: the bundled MovieLens latest-small "
        f"({n_members:,} members) imported, `{model}` trained and promoted; requests carry an operator "
        "token and the rate limit is raised out of the way.\n\n"
        f"### In process: `/members/{{id}}/home` of every member, after one warm-up request\n\n"
        "The test client of `create_app()` (routing, auth, validation, JSON) and the service call "
        "`platform.home.home(id)` alone (database reads, fold-in scoring, rows), one request at a time. "
        "*Page built*: no page cached, so every member's events are read, folded into the model and cut "
        "into rows; *page cached*: the same members again — a built page is kept until something on it may "
        "have changed (the member's next event, a promotion, the region's titles or top 10). "
        f"Target p99 ≤ {P99_TARGET_MS:g} ms.\n\n"
        f"{local_table}\n\n"
        f"### Over HTTP: Gunicorn behind wrk\n\n"
        f"Gunicorn {args.workers} workers × {args.threads} thread(s) (gthread); "
        f"`wrk -t{args.wrk_threads} -c{args.connections} --latency`, every endpoint through the same kind of "
        "Lua script (a list of paths taken in turn, the token in a header), so wrk's own cost per request "
        "is the same for all. The home runs ask every member's page "
        "in turn. The first home run "
        f"({args.warmup:g} s) starts with no page built: each worker folds in and scores every member's "
        f"page once. Then {args.duration:g} s per endpoint, in {args.rounds} interleaved rounds whose order "
        "rotates (requests/s: all requests over all rounds' time; p50 and p99: the median of the rounds; "
        "max: of all): the home runs measure the steady "
        "state of members coming back to their home page — cached pages, each rebuilt when something on it "
        "changed. wrk and Gunicorn share this machine's "
        f"{cores} cores, so the figures are a floor for a server with its own cores.\n\n"
        f"{http_table}\n\n"
        "Answers other than 2xx/3xx over the whole server run (set-up and readiness checks included), by "
        f"route and status, from the workers' own `openflix_http_requests_total`: {refused_text}.\n\n"
        f"Home / healthz requests per second: **{ratio:.2f}** (target ≥ {RATIO_TARGET:g} with 0 errors: "
        f"{verdict}). `/healthz` does no authentication and no rate limiting; `/whoami` is the trivial "
        "endpoint that goes the same way as home (token, rate limit, JSON): home / whoami: "
        f"**{ratio_auth:.2f}** ({verdict_auth}).\n\n"
        "The CPU columns count what the Gunicorn workers and wrk spent during each endpoint's runs, per "
        "request: unlike requests/s they do not move with how much of the shared cores this virtual "
        f"machine got in each round. Workers' CPU per request, healthz / home: **{cpu_ratio:.2f}**; "
        f"whoami / home: **{cpu_ratio_auth:.2f}** (the share of home's requests/s the workers' own cost "
        "would allow, given the trivial endpoint's).\n\n"
        f"`/cdn/steer` (the sample topology, 222 appliances, every site filled; 5,000 requests like "
        "playbacks — 80% from ISP prefixes, 15% from region blocks, 5% from nowhere — titles drawn by "
        f"their plays; each answer three signed URLs): **{steer.rps:,.0f}** requests/s, "
        f"{steer.rps / health.rps if health.rps else float('nan'):.2f} × `/healthz`, "
        f"{steer.rps / whoami.rps if whoami.rps else float('nan'):.2f} × `/whoami`.\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="Gunicorn workers (default 2).")
    parser.add_argument("--threads", type=int, default=1, help="Threads per Gunicorn worker (default 1).")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16).")
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk threads (default 2).")
    parser.add_argument(
        "--duration", type=float, default=40.0, help="Measured seconds per endpoint (default 40)."
    )
    parser.add_argument(
        "--rounds", type=int, default=4, help="Interleaved rounds the duration is split into (default 4)."
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=20.0,
        help="Seconds of wrk on the home endpoint before the measured runs (default 20: long enough for "
        "every worker to build every member's page once); reported as its own row.",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary directory (logs, database).")
    args = parser.parse_args(argv)
    if not Path(WRK).exists():
        raise SystemExit("wrk not found: apt-get install wrk")
    command = shlex.join(["python", "benchmarks/api.py", *(sys.argv[1:] if argv is None else argv)])
    load = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="openflix-bench-api-"))
    try:
        env = bench_env(tmp)
        os.environ.update(env)
        tempfile.tempdir = env["TMPDIR"]  # the serving model cache of this process too
        from openflix.settings import Settings

        model = Settings.from_env().model
        log(f"preparing {tmp} (latest-small, {model})")
        token, members = prepare(tmp, env)
        log(f"in process: {len(members):,} members")
        local = in_process(token, members)
        for name, p in local.items():
            log(f"  {name}: p50 {p['p50']:.2f} ms, p99 {p['p99']:.2f} ms, max {p['max']:.2f} ms")
        http, refusals = over_http(tmp, env, token, members, args)
        text = section(args, command, len(members), model, local, http, refusals, load)
    finally:
        tempfile.tempdir = None
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(text)
    write_section(args.out, MARK, text)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
