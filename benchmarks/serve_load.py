"""Load on `optmem serve`, loopback only: lost, duplicated and cross-tenant turns, 5xx, added latency.

A fake upstream (in this process, as JSON or SSE) stands in for the model, answering after 2 s
by default (a model's time to reply; --upstream-ms 0: at once). 16 clients (by default) each hold
one conversation over 2 tenants (the same conversation names under both tenants, so a leak across
tenants would show) and send 50 turns each, every reply sent back in the next request's history
as a real client does; every 5th request streams. Each client pauses 0-2 s (uniform) before each
turn, as a person reading and typing would (--think-ms 0: never), so clients fall out of step.
With --upstream-ms 0 --think-ms 0 every client sends its next turn the moment a reply comes: the
instances are saturated, and a request's latency is mostly its wait behind the others (a
throughput figure, not optmem's added time).
Scenarios: one instance on SQLite; two instances on one PostgreSQL (started with .ci/postgres.sh),
each client's requests alternating between them. Every scenario stops by itself after its turns
or its time limit, whichever comes first.

Checks, from each conversation's stored history at the end: every turn the client saw answered
is stored once, in order (lost, duplicated, reordered), and no turn carries another client's
marker (cross-tenant); and the fake upstream checks each forwarded context the same way.
Added latency = client-measured request time minus the fake upstream's own handling time: what
optmem (and its extra loopback hop) adds. The memory uses the default config (retrieval on,
MiniLM) at the given budget and profile.

    python benchmarks/serve_load.py                  # 16 clients x 50 turns, every scenario
    python benchmarks/serve_load.py --upstream-ms 0 --think-ms 0 --out benchmarks/results/serve_load_saturated
    python benchmarks/serve_load.py --turns 10       # shorter, on a loaded machine

Writes benchmarks/results/serve_load.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from optmem.store import open_store

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TENANTS = ("acme", "globex")
MARKER = re.compile(r"\[client (\d+)\]")
WORDS = ["harbour", "lighthouse", "invoice", "ledger", "meadow", "copper", "violin", "orbit", "lantern", "quarry", "saffron", "glacier", "tram", "orchard", "beacon", "canal", "falcon", "marble", "riddle", "cobalt"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeUpstream:
    """Answers after ``delay_s`` (a model's time to reply; 0: at once); records its handling time
    and any context that mixes clients."""

    def __init__(self, delay_s: float = 0.0):
        self.delay_s = delay_s
        self.mixed_contexts = 0
        self.requests = 0
        self.app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])

    async def _chat(self, request: Request):
        start = time.perf_counter()
        body = await request.json()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        self.requests += 1
        text = json.dumps(body["messages"])
        clients = set(MARKER.findall(text))
        if len(clients) > 1:
            self.mixed_contexts += 1
        marker = f"[client {min(clients)}]" if clients else ""
        reply = f"{marker} noted, reply {self.requests}: {' '.join(random.choices(WORDS, k=12))}"

        def took() -> dict:
            return {"x-fake-upstream-ms": f"{(time.perf_counter() - start) * 1000:.3f}"}

        if body.get("stream"):
            async def events():
                for i in range(0, len(reply), 16):
                    yield f"data: {json.dumps({'choices': [{'index': 0, 'delta': {'content': reply[i:i + 16]}}]})}\n\n"
                yield "data: [DONE]\n\n"
            return StreamingResponse(events(), media_type="text/event-stream", headers=took())
        return JSONResponse({"object": "chat.completion", "choices": [{"index": 0, "message": {
            "role": "assistant", "content": reply}}]}, headers=took())


def _cpu_times() -> list[int] | None:
    """The whole machine's CPU times (/proc/stat's first line: user nice system idle iowait irq
    softirq steal ...), None where there is no /proc/stat."""
    try:
        with open("/proc/stat") as f:
            return [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None


class LoadSampler:
    """The 1-minute load average, sampled every few seconds while a scenario runs (the machine is
    shared), and the share of CPU time the machine's hypervisor gave to others (steal): on a
    virtual machine the latencies here move with it."""

    def __init__(self, every_s: float = 5.0):
        self.samples: list[float] = []
        self._every = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(self._every):
                return

    def __enter__(self):
        self._cpu = _cpu_times()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)
        end = _cpu_times()
        self.steal_pct = self.busy_pct = None
        if self._cpu is not None and end is not None:
            spent = [b - a for a, b in zip(self._cpu, end)]
            total = sum(spent) or 1
            self.steal_pct = round(100 * spent[7] / total, 1)
            self.busy_pct = round(100 * (total - spent[3] - spent[4] - spent[7]) / total, 1)

    def summary(self) -> dict:
        s = self.samples or [float("nan")]
        return {"min": round(min(s), 1), "mean": round(sum(s) / len(s), 1), "max": round(max(s), 1),
                "steal_pct": self.steal_pct, "busy_pct": self.busy_pct}


class Background:
    """A uvicorn server in a thread of this process."""

    def __init__(self, app, port: int):
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


def _start_instance(db: str, upstream: str, keys: Path, port: int, args, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "optmem.cli", "serve", "--upstream", upstream, "--db", db, "--keys", str(keys),
           "--model", args.model, "--budget", str(args.budget), "--port", str(port)]
    if args.workers is not None:
        cmd += ["--workers", str(args.workers)]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            env={**os.environ, "OMP_NUM_THREADS": args.torch_threads})


def _wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"optmem serve on port {port} exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"optmem serve on port {port} not healthy after {timeout:.0f} s")


def _user_text(client: int, turn: int, rng: random.Random) -> str:
    body = " ".join(rng.choices(WORDS, k=rng.randint(40, 90)))
    return f"[client {client}] turn {turn}: {body} (code {rng.randint(1000, 9999)}-{client}-{turn})"


async def _client(i: int, ports: list[int], keys: dict[str, str], args, deadline: float, stats: dict) -> dict:
    tenant = TENANTS[i % len(TENANTS)]
    name = f"conv{i // len(TENANTS)}"  # the same names under both tenants
    rng = random.Random(1000 + i)
    messages = [{"role": "system", "content": "You are a helpful assistant."}]
    answered = 0
    last_port = ports[0]
    headers = {"Authorization": f"Bearer {keys[tenant]}", "X-Optmem-Conversation": name}
    # Idle connections expire before uvicorn's 5 s keep-alive does: else a turn sent on a connection
    # the server is closing that moment fails with a ReadError (a client between two instances
    # leaves each idle for a few seconds).
    async with httpx.AsyncClient(timeout=300, limits=httpx.Limits(keepalive_expiry=2.0)) as http:
        for turn in range(args.turns):
            if args.think_ms:  # a person reading the last reply (or arriving) and typing: clients fall out of step
                await asyncio.sleep(rng.uniform(0, args.think_ms) / 1000)
            if time.monotonic() > deadline:
                break
            messages.append({"role": "user", "content": _user_text(i, turn, rng)})
            port = last_port = ports[(i + turn) % len(ports)]
            stream = turn % 5 == 4
            body = {"model": "fake", "messages": messages, "stream": stream}
            start = time.perf_counter()
            try:
                if stream:
                    async with http.stream("POST", f"http://127.0.0.1:{port}/v1/chat/completions", headers=headers,
                                           json=body) as r:
                        raw = b"".join([c async for c in r.aiter_bytes()])
                        status, upstream_ms = r.status_code, float(r.headers.get("x-fake-upstream-ms", "nan"))
                        timing = r.headers.get("server-timing", "")
                    reply = "".join(json.loads(line[5:])["choices"][0]["delta"]["content"]
                                    for line in raw.decode().splitlines()
                                    if line.startswith("data: {")) if status == 200 else None
                else:
                    r = await http.post(f"http://127.0.0.1:{port}/v1/chat/completions", headers=headers, json=body)
                    status, upstream_ms = r.status_code, float(r.headers.get("x-fake-upstream-ms", "nan"))
                    timing = r.headers.get("server-timing", "")
                    reply = r.json()["choices"][0]["message"]["content"] if status == 200 else None
            except httpx.HTTPError as e:
                stats["transport_errors"].append(f"client {i} turn {turn}: {type(e).__name__}")
                messages.pop()
                break
            elapsed = (time.perf_counter() - start) * 1000
            stats["statuses"][status] = stats["statuses"].get(status, 0) + 1
            if status != 200:
                stats["errors"].append(f"client {i} turn {turn}: {status} {r.text[:200] if not stream else ''}")
                messages.pop()
                break
            stats["added_ms"].append(elapsed - upstream_ms)
            parts = _server_timing(timing)
            if "upstream" in parts:  # the hop to the upstream and back, less the upstream's own time
                parts["upstream-hop"] = parts.pop("upstream") - upstream_ms
                parts["handler"] -= upstream_ms
            stats["timings"].append(parts)
            stats["rows"].append({"client": i, "turn": turn, "stream": stream, "added_ms": round(elapsed - upstream_ms, 2),
                                  "at_s": round(time.perf_counter() - stats["start"], 3), **parts})
            messages.append({"role": "assistant", "content": reply})
            answered += 1
    return {"client": i, "tenant": tenant, "name": name, "expected": messages[1:], "answered": answered,
            "last_port": last_port}


def _check(history: list[dict], expected: list[dict], client: int) -> dict:
    got = [(t["role"], t["text"]) for t in history]
    want = [(m["role"], m["content"]) for m in expected]
    lost = sum(1 for w in want if w not in got)
    duplicated = len(got) - len(set(got))
    # Stored beyond what the client saw answered: only a user turn whose request failed may be there.
    extra = [g for g in got if g not in want]
    reordered = int([g for g in got if g in want] != want[: len([g for g in got if g in want])])
    cross = sum(1 for _, text in got if text and any(int(c) != client for c in MARKER.findall(text)))
    return {"lost": lost, "duplicated": duplicated, "extra": len(extra), "reordered": reordered, "cross_tenant": cross}


def _server_timing(header: str) -> dict[str, float]:
    """optmem's Server-Timing entries (ms) by part, without the "optmem-" prefix."""
    parts = {}
    for entry in header.split(","):
        name, _, dur = entry.strip().partition(";dur=")
        if name.startswith("optmem-") and dur:
            parts[name.removeprefix("optmem-")] = float(dur)
    return parts


PARTS = ("intake", "wait", "store", "context", "export", "upstream-hop")


def _breakdown(added: list[float], timings: list[dict[str, float]]) -> dict:
    """Mean ms of each part of optmem's time (its Server-Timing) over all requests and over the
    slowest 5 %, with the rest of the handler's time and the time outside it."""
    def mean_parts(rows):
        if not rows:
            return {}
        out = {p: round(sum(t.get(p, 0.0) for _, t in rows) / len(rows), 1) for p in PARTS}
        out["in handler, other"] = round(sum(t.get("handler", 0.0) - sum(t.get(p, 0.0) for p in PARTS)
                                             for _, t in rows) / len(rows), 1)
        out["outside handler"] = round(sum(a - t.get("handler", 0.0) for a, t in rows) / len(rows), 1)
        return out
    rows = list(zip(added, timings))
    slowest = sorted(rows, key=lambda r: r[0])[-max(1, len(rows) // 20):] if rows else []
    return {"all": mean_parts(rows), "slowest_5pct": mean_parts(slowest)}


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _drive(ports: list[int], keys: dict[str, str], args) -> dict:
    stats = {"statuses": {}, "errors": [], "transport_errors": [], "added_ms": [], "timings": [], "rows": [],
             "start": time.perf_counter()}
    # One warm-up request per instance (its connections; the embedder and fonts load at startup), on a
    # conversation the checks skip.
    async with httpx.AsyncClient(timeout=300) as http:
        for port in ports:
            r = await http.post(f"http://127.0.0.1:{port}/v1/chat/completions",
                                headers={"Authorization": f"Bearer {keys[TENANTS[0]]}",
                                         "X-Optmem-Conversation": f"warmup{port}"},
                                json={"model": "fake", "messages": [{"role": "user", "content": "warm up"}]})
            r.raise_for_status()
    start = time.perf_counter()
    deadline = time.monotonic() + args.time_limit
    runs = await asyncio.gather(*(_client(i, ports, keys, args, deadline, stats) for i in range(args.clients)))
    wall = time.perf_counter() - start
    totals = {"lost": 0, "duplicated": 0, "extra": 0, "reordered": 0, "cross_tenant": 0}
    async with httpx.AsyncClient(timeout=300) as http:
        for run in runs:
            # From the instance that answered last: it stores a reply after sending it, and its history
            # read waits for that store (another instance's read could come first).
            r = await http.get(f"http://127.0.0.1:{run['last_port']}/v1/conversations/{run['name']}/history",
                               headers={"Authorization": f"Bearer {keys[run['tenant']]}"})
            r.raise_for_status()
            for k, v in _check(r.json()["turns"], run["expected"], run["client"]).items():
                totals[k] += v
    requests = sum(stats["statuses"].values())
    added = stats["added_ms"]
    return {"requests": requests, "planned": args.clients * args.turns, "answered": sum(r["answered"] for r in runs),
            "statuses": {str(k): v for k, v in sorted(stats["statuses"].items())},
            "5xx": sum(v for k, v in stats["statuses"].items() if k >= 500), **totals,
            "transport_errors": stats["transport_errors"][:10], "errors": stats["errors"][:10],
            "added_ms_p50": round(_percentile(added, 0.5), 1), "added_ms_p95": round(_percentile(added, 0.95), 1),
            "added_ms_max": round(max(added, default=float("nan")), 1),
            "added_ms_parts": _breakdown(added, stats["timings"]), "rows": stats["rows"],
            "requests_per_s": round(requests / wall, 2), "wall_s": round(wall, 1),
            "stopped_by_time_limit": time.monotonic() > deadline,
            "conversations": sorted({f"{run['tenant']}/{run['name']}" for run in runs})}


def _backlog(db: str, conversations: list[str]) -> dict:
    """Sealed pages, and those not embedded yet, when the last client got its last reply: upkeep
    runs after requests, so under load some is still to do when they stop."""
    store = open_store(db)
    try:
        convs = [store.conversation_id(name, create=False) for name in conversations]
        return {"pages": sum(len(store.pages(c)) for c in convs),
                "unembedded_at_end": sum(len(store.unindexed_pages(c)) for c in convs)}
    finally:
        store.close()


def _scenario(name: str, dbs: list[str], upstream_port: int, keyfile: Path, keys: dict[str, str], args, tmp: Path,
              fake: FakeUpstream) -> dict:
    ports = [_free_port() for _ in dbs]
    procs = []
    try:
        for n, (db, port) in enumerate(zip(dbs, ports)):
            procs.append(_start_instance(db, f"http://127.0.0.1:{upstream_port}/v1", keyfile, port, args,
                                         tmp / f"{name}-{n}.log"))
        for port, proc in zip(ports, procs):
            _wait_healthy(port, proc)
        fake.mixed_contexts = 0
        with LoadSampler() as load:
            result = asyncio.run(_drive(ports, keys, args))
        result["mixed_contexts_at_upstream"] = fake.mixed_contexts
        result.update(_backlog(dbs[0], result.pop("conversations")))
        rows = result.pop("rows")
        if args.requests_out:
            with args.requests_out.open("a") as f:
                f.writelines(json.dumps({"scenario": name, **row}) + "\n" for row in rows)
        result["load_average"] = load.summary()
        return {"scenario": name, "instances": len(dbs), **result}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _markdown(report: dict) -> str:
    a = report["args"]
    lines = [
        "# `optmem serve` under load (benchmarks/serve_load.py)", "",
        (f"`{report['command']}` on {report['machine']}; {a['clients']} clients x {a['turns']} turns over "
         f"{len(TENANTS)} tenants, profile {a['model']}, budget {a['budget']}, retrieval on (MiniLM, "
         f"OMP_NUM_THREADS={a['torch_threads']}), a fake upstream that answers "
         f"{'at once' if not a.get('upstream_ms') else 'after %g ms' % a['upstream_ms']} (every 5th request "
         "streamed)" + (f", clients pausing 0-{a['think_ms']:g} ms (uniform) before each turn" if a.get("think_ms") else "")
        + (f", {a['workers']} workers per instance" if a.get("workers") else "")
        + (". Added latency: client time minus the fake upstream's handling time (optmem's work plus its loopback "
           "hop). Pages: sealed when the last reply came, and how many of them were not embedded yet (upkeep runs "
           "after requests, and under load some is left when they stop).")), "",
        ("| scenario | requests | 5xx | lost | duplicated | reordered | cross-tenant | added p50 ms | added p95 ms "
         "| req/s | wall s | pages (not embedded) | load avg min/mean/max | CPU busy / steal % |"),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["scenarios"]:
        cross = r["cross_tenant"] + r["mixed_contexts_at_upstream"]
        load = r["load_average"]
        lines.append(f"| {r['scenario']} | {r['requests']}/{r['planned']} | {r['5xx']} | {r['lost']} | "
                     f"{r['duplicated']} | {r['reordered']} | {cross} | {r['added_ms_p50']} | {r['added_ms_p95']} | "
                     f"{r['requests_per_s']} | {r['wall_s']} | {r['pages']} ({r['unembedded_at_end']}) | "
                     f"{load['min']}/{load['mean']}/{load['max']} | {load.get('busy_pct')} / {load.get('steal_pct')} |")
    if a.get("upstream_ms") or a.get("think_ms"):
        pace = ("Each client waits for the upstream's answer" + (" and its pause" if a.get("think_ms") else "")
                + " before its next turn, so the load is what that pace offers (requests/s above), and a request's "
                "latency is optmem's work plus its wait behind the other conversations on its worker.")
    else:
        pace = ("Clients send their next turn as soon as a reply comes (the fake upstream takes no time), so with 16 "
                "clients the instances are saturated: memory work runs on one worker per core, and a request's "
                "latency is mostly its wait behind the others (about clients / requests per second); the 1-client "
                "row is optmem's own time per request.")
    lines += ["", ("Where the added time went (mean ms, from optmem's Server-Timing header): reading the request, "
                   "waiting for the memory worker, storing the new messages, assembling, exporting, the hop to the "
                   "upstream and back (less its own time); in handler, other: the rest of the handler's time; "
                   "outside handler: HTTP on the client's hop and the event loops. The reply is stored after the "
                   "response goes out, so it is in none of these."),
              "", "| scenario | requests | " + " | ".join(PARTS) + " | in handler, other | outside handler |",
              "|---|---|" + "---|" * (len(PARTS) + 2)]
    for r in report["scenarios"]:
        for which, label in (("all", "all"), ("slowest_5pct", "slowest 5 %")):
            parts = r.get("added_ms_parts", {}).get(which)
            if parts:
                lines.append(f"| {r['scenario']} | {label} | " + " | ".join(str(parts[p]) for p in PARTS)
                             + f" | {parts['in handler, other']} | {parts['outside handler']} |")
    lines += ["", ("Goals: lost, duplicated, cross-tenant turns and 5xx 0; added p95 <= 100 ms at budget 8192 with "
                   f"retrieval (on 2 cores). {pace} The load average is the whole machine's (other jobs included), "
                   "sampled every 5 s during the scenario; CPU busy and steal are shares of the machine's CPU time "
                   "over the scenario (/proc/stat): steal is time the hypervisor gave to other machines, and the "
                   "latencies rise with it."), ""]
    for r in report["scenarios"]:
        if r["errors"] or r["transport_errors"] or r["stopped_by_time_limit"]:
            lines.append(f"- {r['scenario']}: stopped by the time limit: {r['stopped_by_time_limit']}; "
                         f"errors: {r['errors'] + r['transport_errors']}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--turns", type=int, default=50, help="requests per client")
    parser.add_argument("--budget", type=int, default=8192)
    parser.add_argument("--model", default="deepseek-ocr-vllm", help="the upstream's profile")
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds per scenario, then clients stop")
    parser.add_argument("--scenarios", default="solo,sqlite,postgres",
                        help="comma-separated: solo (1 client, SQLite), sqlite, postgres")
    parser.add_argument("--torch-threads", default=os.environ.get("OMP_NUM_THREADS", "1"),
                        help="OMP_NUM_THREADS for the instances (the query embedder's threads; on a few busy cores "
                             "more threads than one spin against each other)")
    parser.add_argument("--upstream-ms", type=float, default=2000.0,
                        help="the fake upstream's time to answer (a model's; 0: at once). optmem embeds what a "
                             "request sealed while the upstream answers, so this time hides that work")
    parser.add_argument("--think-ms", type=float, default=2000.0,
                        help="a client's pause before each turn (after the last reply), uniform in [0, think-ms] "
                             "(0: none, so every client sends at once and, with --upstream-ms, in step)")
    parser.add_argument("--workers", type=int, help="memory worker threads per instance (default: optmem serve's, "
                        "one per usable core)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--requests-out", type=Path, help="also append every request's timings here (JSON lines)")
    args = parser.parse_args(argv)
    random.seed(7)
    load_before = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="optmem-serve-load-"))
    keys = {t: f"{t}-key-{random.Random(t).getrandbits(128):032x}" for t in TENANTS}
    keyfile = tmp / "keys.toml"
    keyfile.write_text("[keys]\n" + "".join(f'"{k}" = "{t}"\n' for t, k in keys.items()))
    fake = FakeUpstream(args.upstream_ms / 1000)
    upstream_port = _free_port()
    scenarios = []
    with Background(fake.app, upstream_port):
        wanted = args.scenarios.split(",")
        if "solo" in wanted:
            # One client alone: no request waits behind another, so this is optmem's own time per request.
            solo = argparse.Namespace(**{**vars(args), "clients": 1})
            scenarios.append(_scenario("sqlite, 1 instance, 1 client", [str(tmp / "solo.db")], upstream_port, keyfile,
                                       keys, solo, tmp, fake))
            print(json.dumps(scenarios[-1]), flush=True)
        if "sqlite" in wanted:
            scenarios.append(_scenario("sqlite, 1 instance", [str(tmp / "serve.db")], upstream_port, keyfile, keys,
                                       args, tmp, fake))
            print(json.dumps(scenarios[-1]), flush=True)
        if "postgres" in wanted:
            # Beside the temporary directory, not in it: as root the cluster runs as another user.
            pg_dir = Path(f"{tmp}-pg")
            started = subprocess.run(["bash", str(ROOT / ".ci" / "postgres.sh"), "start", str(pg_dir)],
                                     capture_output=True, text=True, check=False)
            if started.returncode != 0:
                raise RuntimeError(f"could not start PostgreSQL: {started.stderr.strip()}")
            dsn = started.stdout.strip()
            try:
                scenarios.append(_scenario("postgres, 2 instances", [dsn, dsn], upstream_port, keyfile, keys, args,
                                           tmp, fake))
                print(json.dumps(scenarios[-1]), flush=True)
            finally:
                subprocess.run(["bash", str(ROOT / ".ci" / "postgres.sh"), "stop", str(pg_dir)], check=False,
                               capture_output=True)
    report = {"command": "python benchmarks/serve_load.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": f"{os.cpu_count()} CPUs, load average {load_before:.1f} before the run and "
                         f"{os.getloadavg()[0]:.1f} at the end",
              "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "scenarios": scenarios}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve_load.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "serve_load.md").write_text(_markdown(report))
    print(_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
