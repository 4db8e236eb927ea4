#!/usr/bin/env python3
"""Benchmarks/scaling/measure.py: the parts of Benchmarks/scaling/run that bash does badly.

    measure.py grow --url URL --image FILE --first N --last M --connections C
    measure.py wait-health --port P --console FILE --ready FILE --spawned FILE [--timeout S]
    measure.py probe --url URL --seconds S [--interval S]
    measure.py sqlite-writes --database FILE --copy FILE [--writes N]
    measure.py watch --url URL --project ID --gateway-pid PID [--interval S] [--timeout S]
    measure.py report --work DIR --json FILE
    measure.py report-reconstruction --work DIR --json FILE

Each command prints one JSON object on stdout (report commands: a table, and the JSON to --json); progress
and errors go to stderr. The bearer token comes from the environment (BENCH_TOKEN), never from the command
line, so it stays out of the process list. Standard library only.
"""
import argparse
import datetime
import http.client
import json
import os
import math
import random
import re
import sqlite3
import statistics
import sys
import threading
import time
import urllib.parse


def fail(message):
    sys.exit(f"Benchmarks/scaling/measure.py: {message}")


def percentile(values, fraction):
    """The nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = math.ceil(fraction * len(ordered))
    return ordered[min(len(ordered), max(1, rank)) - 1]


def latency_summary(seconds):
    """Median, p90, p99 and maximum of a list of durations in seconds, as milliseconds."""
    if not seconds:
        return {}
    return {"p50_ms": 1e3 * statistics.median(seconds), "p90_ms": 1e3 * percentile(seconds, 0.9),
            "p99_ms": 1e3 * percentile(seconds, 0.99), "max_ms": 1e3 * max(seconds), "count": len(seconds)}


def host_and_port(url):
    parts = urllib.parse.urlsplit(url)
    return parts.hostname, parts.port


def auth_headers():
    token = os.environ.get("BENCH_TOKEN")
    if not token:
        fail("BENCH_TOKEN is not set")
    return {"Authorization": f"Bearer {token}"}


# MARK: grow

def multipart(name, image_name, image_bytes, boundary):
    """A POST /api/projects body: the name field and one image part."""
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n{name}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"images\"; filename=\"{image_name}\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode()
    return head + image_bytes + f"\r\n--{boundary}--\r\n".encode()


def grow(args):
    """Creates projects args.first + 1 ... args.last through the API, over C keep-alive connections."""
    host, port = host_and_port(args.url)
    image_bytes = open(args.image, "rb").read()
    image_name = os.path.basename(args.image)
    boundary = "scaling-bench-" + "".join(random.choice("0123456789abcdef") for _ in range(16))
    headers = dict(auth_headers())
    headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    pending = list(range(args.first + 1, args.last + 1))
    lock = threading.Lock()
    latencies, errors = [], []

    def client():
        connection = http.client.HTTPConnection(host, port, timeout=120)
        while True:
            with lock:
                if not pending or errors:
                    break
                number = pending.pop(0)
            body = multipart(f"scale-{number:06d}", image_name, image_bytes, boundary)
            start = time.monotonic()
            try:
                connection.request("POST", "/api/projects", body=body, headers=headers)
                response = connection.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException) as error:
                with lock:
                    errors.append(f"project {number}: {error!r}")
                break
            elapsed = time.monotonic() - start
            if response.status != 201:
                with lock:
                    errors.append(f"project {number}: {response.status} {answer[:200]!r}")
                break
            with lock:
                latencies.append(elapsed)
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(args.connections)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - start
    if errors:
        fail("; ".join(errors[:3]))
    created = len(latencies)
    result = {"first": args.first, "last": args.last, "created": created, "seconds": seconds,
              "projects_per_second": created / seconds if seconds > 0 else 0.0,
              "connections": args.connections, "image": args.image, "image_bytes": len(image_bytes),
              "latency": latency_summary(latencies)}
    print(json.dumps(result))


# MARK: wait-health

def wait_health(args):
    """Polls until the gateway that bash starts right after `ready` appears answers GET /api/health.

    Wall-clock times (time.time(), the clock of bash's EPOCHREALTIME) of the spawn (which bash writes to
    `spawned` just before it), of the console line and of the first 200.
    """
    with open(args.ready, "w") as ready:
        ready.write(f"{time.time():.6f}\n")
    deadline = time.monotonic() + args.timeout
    port, console_at = None, None
    pattern = re.compile(r"serving on https?://\S*:(\d+)")
    while time.monotonic() < deadline:
        if port is None:
            try:
                match = pattern.search(open(args.console).read())
            except OSError:
                match = None
            if match:
                port, console_at = int(match.group(1)), time.time()
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port or args.port, timeout=5)
            connection.request("GET", "/api/health")
            response = connection.getresponse()
            response.read()
            connection.close()
            if response.status == 200:
                health_at = time.time()
                spawned_at = float(open(args.spawned).read())
                print(json.dumps({"spawned_at": spawned_at, "console_at": console_at, "health_at": health_at,
                                  "port": port or args.port}))
                return
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.002)
    fail(f"GET /api/health did not answer within {args.timeout} s")


# MARK: probe

def probe(args):
    """One client's GET /api/health, every `interval` seconds for `seconds`, while others load the gateway."""
    host, port = host_and_port(args.url)
    latencies, failures = [], 0
    end = time.monotonic() + args.seconds
    connection = http.client.HTTPConnection(host, port, timeout=30)
    while time.monotonic() < end:
        start = time.monotonic()
        try:
            connection.request("GET", "/api/health")
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                latencies.append(time.monotonic() - start)
            else:
                failures += 1
        except (OSError, http.client.HTTPException):
            failures += 1
            connection.close()
            connection = http.client.HTTPConnection(host, port, timeout=30)
        time.sleep(max(0.0, args.interval - (time.monotonic() - start)))
    connection.close()
    print(json.dumps({"latency": latency_summary(latencies), "failures": failures}))


# MARK: sqlite-writes

def sqlite_writes(args):
    """Commits per second of one connection doing the scheduler's kind of write, on a copy of the database.

    The copy is taken with SQLite's backup API (a consistent snapshot while the gateway runs) and opened with the
    gateway's settings: WAL, synchronous NORMAL. Each write is one autocommit UPDATE of a project's progress.
    """
    source = sqlite3.connect(f"file:{args.database}?mode=ro", uri=True)
    if os.path.exists(args.copy):
        os.remove(args.copy)
    target = sqlite3.connect(args.copy)
    source.backup(target)
    source.close()
    target.close()
    connection = sqlite3.connect(args.copy, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = NORMAL")
    ids = [row[0] for row in connection.execute("SELECT id FROM projects")]
    if not ids:
        fail("the database has no projects")
    durations = []
    for index in range(args.writes):
        project = ids[index % len(ids)]
        start = time.perf_counter()
        connection.execute("UPDATE projects SET progress = ?, processing_stage = ? WHERE id = ?",
                           (index / args.writes, "Point Cloud Generation", project))
        durations.append(time.perf_counter() - start)
    list_durations = []
    for _ in range(20):
        start = time.perf_counter()
        connection.execute("SELECT id, name, image_count, status, progress, processing_stage, has_model, has_glb, "
                           "model_detail, error_message FROM projects ORDER BY created_at, id").fetchall()
        list_durations.append(time.perf_counter() - start)
    connection.close()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(args.copy + suffix):
            os.remove(args.copy + suffix)
    total = sum(durations)
    print(json.dumps({"writes": args.writes, "seconds": total, "writes_per_second": args.writes / total,
                      "write_latency": latency_summary(durations), "projects": len(ids),
                      "list_query_latency": latency_summary(list_durations),
                      "sqlite_version": sqlite3.sqlite_version}))


# MARK: watch

def proc_status(pid):
    """VmRSS and VmHWM in KiB, or None when the process is gone."""
    try:
        fields = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status"))
    except OSError:
        return None
    kib = lambda key: int(fields.get(key, "0 kB").split()[0])
    return {"rss_kib": kib("VmRSS"), "hwm_kib": kib("VmHWM")}


def cpu_seconds(pid):
    """User + system CPU time of a process so far (fields 14 and 15 of /proc/PID/stat)."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid):
    """Process ids whose parent chain leads to pid."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            parents[int(entry)] = int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            pass
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        children = [child for child, parent in parents.items() if parent == current]
        found += children
        frontier += children
    return found


def watch(args):
    """Follows one computation to its end: stage changes, and the workers' memory and CPU time."""
    host, port = host_and_port(args.url)
    headers = auth_headers()
    connection = http.client.HTTPConnection(host, port, timeout=30)
    start = time.time()
    stages, last_stage, samples = [], None, []
    workers_peak_sum_kib, gateway_peak_kib = 0, 0
    worker_max = {}
    project = {}
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        connection.request("GET", f"/api/projects/{args.project}", headers=headers)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            fail(f"GET /api/projects/{args.project} answered {response.status}: {body[:200]!r}")
        project = json.loads(body)
        now = time.time()
        stage = project.get("processingStage") or ""
        if stage != last_stage:
            stages.append({"stage": stage, "status": project.get("status"), "at": now - start,
                           "progress": project.get("progress")})
            last_stage = stage
            print(f"    {now - start:7.1f} s  {project.get('status')}  {stage or '-'}", file=sys.stderr)
        workers = descendants(args.gateway_pid)
        total = 0
        for pid in workers:
            status = proc_status(pid)
            if status is None:
                continue
            total += status["rss_kib"]
            worker_max[pid] = max(worker_max.get(pid, 0), status["hwm_kib"])
        workers_peak_sum_kib = max(workers_peak_sum_kib, total)
        gateway = proc_status(args.gateway_pid)
        if gateway:
            gateway_peak_kib = max(gateway_peak_kib, gateway["hwm_kib"])
        samples.append([round(now - start, 2), total])
        if project.get("status") in ("completed", "failed", "ready"):
            break
        time.sleep(args.interval)
    else:
        fail(f"the computation did not end within {args.timeout} s")
    workers = descendants(args.gateway_pid)
    worker_cpu = {pid: cpu_seconds(pid) for pid in workers}
    connection.close()
    print(json.dumps({
        "seconds": time.time() - start, "final": project, "stages": stages,
        "workers": [{"pid": pid, "hwm_kib": max(worker_max.get(pid, 0), (proc_status(pid) or {}).get("hwm_kib", 0)),
                     "cpu_s": worker_cpu.get(pid)} for pid in sorted(set(worker_max) | set(workers))],
        "workers_rss_sum_peak_kib": workers_peak_sum_kib, "gateway_hwm_kib": gateway_peak_kib,
        "gateway_cpu_s": cpu_seconds(args.gateway_pid), "rss_samples": samples}))


# MARK: report

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def millis(text):
    number, unit = re.fullmatch(r"([0-9.]+)([a-z]+)", text).groups()
    return float(number) * UNITS[unit]


def parse_wrk(path):
    text = open(path).read()

    def find(pattern, default=None):
        match = re.search(pattern, text, re.M)
        return match.groups() if match else default

    rate = find(r"^Requests/sec:\s+([0-9.]+)")
    if rate is None:
        fail(f"no Requests/sec in {path}:\n{text}")
    total = find(r"^\s*(\d+) requests in ([0-9.]+[a-z]+)")
    sockets = find(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", ("0",) * 4)
    non2xx = int(find(r"Non-2xx or 3xx responses: (\d+)", ("0",))[0])
    latency = {}
    for p in ("50", "90", "99"):
        found = find(rf"^\s+{p}%\s+(\S+)")
        latency[p] = millis(found[0]) if found else None
    return {"requests_per_second": float(rate[0]), "requests": int(total[0]), "latency_ms": latency,
            "errors": non2xx + sum(map(int, sockets))}


def read_json(path):
    with open(path) as file:
        return json.load(file)


def read_facts(path):
    facts = {}
    for line in open(path):
        key, _, value = line.rstrip("\n").partition("\t")
        facts[key] = value
    return facts


TARGETS = (("health", "GET /api/health"), ("status", "GET /api/status"), ("projects", "GET /api/projects"))


def size_result(directory):
    """Everything measured at one store size, from the files bash left in its folder."""
    facts = read_facts(os.path.join(directory, "facts.tsv"))
    grow_result = read_json(os.path.join(directory, "grow.json"))
    starts = [read_json(os.path.join(directory, name)) for name in sorted(os.listdir(directory))
              if name.startswith("start-") and name.endswith(".json")]
    targets = {}
    for name, label in TARGETS:
        runs, probes = [], []
        for file in sorted(os.listdir(directory)):
            if file.startswith("wrk-") and file.endswith(f"-{name}.txt"):
                runs.append(parse_wrk(os.path.join(directory, file)))
            if file.startswith("probe-") and file.endswith(f"-{name}.json"):
                probes.append(read_json(os.path.join(directory, file)))
        rates = [r["requests_per_second"] for r in runs]
        targets[name] = {
            "label": label, "runs": runs, "probes": probes,
            "median_requests_per_second": statistics.median(rates),
            "min_requests_per_second": min(rates), "max_requests_per_second": max(rates),
            "median_p50_ms": statistics.median(r["latency_ms"]["50"] for r in runs),
            "median_p99_ms": statistics.median(r["latency_ms"]["99"] for r in runs),
            "errors": sum(r["errors"] for r in runs),
            "body_bytes": int(facts[f"body.{name}"]),
            "probe_median_p50_ms": statistics.median(p["latency"]["p50_ms"] for p in probes),
            "probe_median_p99_ms": statistics.median(p["latency"]["p99_ms"] for p in probes),
            "probe_max_ms": max(p["latency"]["max_ms"] for p in probes),
        }
    base = targets["health"]["median_requests_per_second"]
    for item in targets.values():
        item["ratio_to_health"] = item["median_requests_per_second"] / base
    start_seconds = [s["health_at"] - s["spawned_at"] for s in starts]
    kib = lambda key: int(facts[key])
    return {
        "projects": int(facts["projects"]),
        "create": grow_result,
        "targets": targets,
        "startup": {"runs": starts, "seconds": start_seconds, "median_seconds": statistics.median(start_seconds),
                    "min_seconds": min(start_seconds), "max_seconds": max(start_seconds)},
        "gateway_memory_kib": {"rss_after_growth": kib("rss.after_growth"), "rss_idle_after_start": kib("rss.idle"),
                               "hwm_during_load": kib("hwm.load"), "rss_after_load": kib("rss.after_load"),
                               "hwm_scope": facts["hwm.scope"]},
        "database_bytes": {"main": kib("db.main"), "wal": kib("db.wal"), "shm": kib("db.shm")},
        "data_dir_kib": kib("du.data"),
        "projects_dir_kib": kib("du.projects"),
        "gateway_log_bytes": kib("log.gateway"),
        "loadavg": facts["loadavg"],
        "sqlite_writes": read_json(os.path.join(directory, "sqlite.json"))
        if os.path.exists(os.path.join(directory, "sqlite.json")) else None,
    }


def human_bytes(count):
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} B"


def ms(value):
    return f"{value * 1000:.0f}us" if value < 1 else f"{value:.1f}ms"


def machine(env):
    return {"nproc": int(env["BENCH_NPROC"]), "cpu_model": env["BENCH_CPU"], "kernel": env["BENCH_KERNEL"],
            "loadavg_before": env["BENCH_LOADAVG_BEFORE"], "loadavg_after": env["BENCH_LOADAVG_AFTER"]}


def binary_line(env):
    commit = env["BENCH_COMMIT"] + (" (working tree has changes)" if env["BENCH_DIRTY"] == "yes" else "")
    return f"replica-link {env['BENCH_GATEWAY']} (file dated {env['BENCH_BUILT']}); tree at {commit}"


def report(args):
    env = os.environ
    sizes = sorted((size_result(os.path.join(args.work, d)) for d in os.listdir(args.work)
                    if d.startswith("size-")), key=lambda s: s["projects"])
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    duration, rounds = int(env["BENCH_DURATION"]), int(env["BENCH_ROUNDS"])
    kind = "quick, " if env["BENCH_QUICK"] == "1" else ""
    lines = [
        f"Replica Link store scaling: wrk -t2 -c{env['BENCH_CONNECTIONS']} -d{duration}s --latency, {kind}median of "
        f"{rounds} interleaved run{'s' if rounds > 1 else ''} per target and size; "
        f"{env['BENCH_RESTARTS']} restarts per size",
        f"{env['BENCH_NPROC']} x {env['BENCH_CPU']}, {env['BENCH_KERNEL']}, {now.isoformat()}",
        binary_line(env),
        "",
        f"{'projects':>8} {'create/s':>8} {'health/s':>9} {'status/s':>9} {'x health':>8} {'status p99':>10} "
        f"{'list/s':>8} {'x health':>8} {'list p99':>9} {'status body':>11} {'list body':>10}",
    ]
    for s in sizes:
        t = s["targets"]
        lines.append(
            f"{s['projects']:>8,} {s['create']['projects_per_second']:>8.0f} "
            f"{t['health']['median_requests_per_second']:>9,.0f} {t['status']['median_requests_per_second']:>9,.0f} "
            f"{t['status']['ratio_to_health']:>8.3f} {ms(t['status']['median_p99_ms']):>10} "
            f"{t['projects']['median_requests_per_second']:>8,.0f} {t['projects']['ratio_to_health']:>8.3f} "
            f"{ms(t['projects']['median_p99_ms']):>9} {human_bytes(t['status']['body_bytes']):>11} "
            f"{human_bytes(t['projects']['body_bytes']):>10}")
    lines += [
        "",
        f"{'projects':>8} {'start s':>8} {'(min-max)':>13} {'RSS idle':>9} {'HWM load':>9} {'sqlite':>9} "
        f"{'wal':>9} {'projects':>9} {'probe p50':>9} {'probe p99':>9} {'probe max':>9} {'load avg':>15}",
    ]
    for s in sizes:
        memory, db, st = s["gateway_memory_kib"], s["database_bytes"], s["startup"]
        probe_target = s["targets"]["projects"]
        lines.append(
            f"{s['projects']:>8,} {st['median_seconds']:>8.3f} "
            f"{'(' + format(st['min_seconds'], '.3f') + '-' + format(st['max_seconds'], '.3f') + ')':>13} "
            f"{memory['rss_idle_after_start'] / 1024:>5.1f} MiB {memory['hwm_during_load'] / 1024:>5.1f} MiB "
            f"{human_bytes(db['main']):>9} {human_bytes(db['wal']):>9} {human_bytes(s['projects_dir_kib'] * 1024):>9} "
            f"{ms(probe_target['probe_median_p50_ms']):>9} {ms(probe_target['probe_median_p99_ms']):>9} "
            f"{ms(probe_target['probe_max_ms']):>9} {s['loadavg']:>15}")
    last = sizes[-1]
    sq = last["sqlite_writes"]
    lines += [
        "",
        "create/s: projects created per second while the store grew to that size (POST /api/projects, one "
        f"{human_bytes(last['create']['image_bytes'])} JPEG,",
        f"  {last['create']['connections']} keep-alive connections); x health: ratio of median req/s to "
        "GET /api/health's in the same rounds.",
        "status p99, list p99: median over the rounds of wrk's 99th-percentile latency; bodies: bytes of one "
        "response.",
        "start s: median seconds from spawning replica-link over that store to its first 200 on /api/health.",
        "RSS idle: VmRSS of a just-started gateway; HWM load: VmHWM during the load (peak "
        f"{last['gateway_memory_kib']['hwm_scope']}).",
        "sqlite, wal: replica.sqlite and replica.sqlite-wal while the gateway runs; projects: du of the "
        "projects directory.",
        "probe: one more client's GET /api/health every 20 ms while 64 connections load GET /api/projects "
        "(median of rounds).",
    ]
    if sq:
        lines += [
            f"SQLite alone ({sq['sqlite_version']}, Python's sqlite3 on a copy of the {sq['projects']:,}-project "
            "database, WAL, synchronous NORMAL):",
            f"  {sq['writes_per_second']:,.0f} single-row UPDATE commits/s (p99 {ms(sq['write_latency']['p99_ms'])}); "
            f"the list query and its rows {ms(sq['list_query_latency']['p50_ms'])} (median).",
        ]
    requests = sum(r["requests"] for s in sizes for t in s["targets"].values() for r in t["runs"])
    lines += [
        f"gateway.log at the end: {human_bytes(last['gateway_log_bytes'])}, never rotated (the measured runs alone "
        f"made {requests:,} requests, one access line each).",
        f"Load average {env['BENCH_LOADAVG_BEFORE']} at start, {env['BENCH_LOADAVG_AFTER']} at the end.",
    ]
    errors = sum(t["errors"] for s in sizes for t in s["targets"].values())
    if errors:
        lines.append(f"wrk errors (non-2xx and socket errors) over all runs: {errors}")
    print("\n".join(lines))

    result = {
        "benchmark": "scaling", "date": now.isoformat(), "quick": env["BENCH_QUICK"] == "1",
        "machine": machine(env),
        "binary": {"replica_link": env["BENCH_GATEWAY"], "file_dated": env["BENCH_BUILT"]},
        "git": {"commit": env["BENCH_COMMIT"], "dirty": env["BENCH_DIRTY"] == "yes"},
        "versions": {"wrk": env["BENCH_WRK"]},
        "load": {"threads": 2, "connections": int(env["BENCH_CONNECTIONS"]), "duration_s": duration,
                 "rounds": rounds, "warmup_s": int(env["BENCH_WARMUP"]), "order": "interleaved",
                 "restarts": int(env["BENCH_RESTARTS"]), "workers": int(env["BENCH_WORKERS"]),
                 "log_level": "info"},
        "baseline": "health", "sizes": sizes,
    }
    with open(args.json, "w") as out:
        json.dump(result, out, indent=2)
        out.write("\n")


WORKER_LINE = re.compile(r'^(\S+) info "task (started|ended)" .*?task\.id=(\S+) task\.kind=(\S+)')


def task_times(log_folder):
    """Per task kind, from the workers' logs: tasks, the sum of their seconds, and first start to last end."""
    started, kinds = {}, {}
    names = sorted(n for n in os.listdir(log_folder) if n.startswith("worker-")) if os.path.isdir(log_folder) else []
    for name in names:
        for line in open(os.path.join(log_folder, name), errors="replace"):
            match = WORKER_LINE.match(line)
            if not match:
                continue
            stamp, event, task, kind = match.groups()
            at = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
            if event == "started":
                started[task] = at
            elif task in started:
                entry = kinds.setdefault(kind, {"tasks": 0, "task_seconds": 0.0, "first": at, "last": at})
                entry["tasks"] += 1
                entry["task_seconds"] += at - started[task]
                entry["first"] = min(entry["first"], started.pop(task))
                entry["last"] = max(entry["last"], at)
    return {kind: {"tasks": e["tasks"], "task_seconds": e["task_seconds"], "span_seconds": e["last"] - e["first"],
                   "first": e["first"]} for kind, e in kinds.items()}


def report_reconstruction(args):
    env = os.environ
    watched = read_json(os.path.join(args.work, "watch.json"))
    facts = read_facts(os.path.join(args.work, "facts.tsv"))
    usage = read_json(os.path.join(args.work, "usage.json"))
    job_log = open(os.path.join(args.work, "job.log")).read() if os.path.exists(
        os.path.join(args.work, "job.log")) else ""
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    stages = watched["stages"]
    rows = []
    for index, entry in enumerate(stages):
        if not entry["stage"]:
            continue
        end = stages[index + 1]["at"] if index + 1 < len(stages) else watched["seconds"]
        rows.append((entry["stage"], end - entry["at"]))
    final = watched["final"]
    workers = watched["workers"]
    kinds = task_times(os.path.join(args.work, "data", "logs"))
    warnings = [line.split(" warning: ", 1)[1] for line in job_log.splitlines() if " warning: " in line]
    ordered = sorted(kinds.items(), key=lambda item: item[1]["first"])
    lines = [
        f"Replica Link reconstruction: {facts['dataset']} ({facts['photos']} photos, "
        f"{human_bytes(int(facts['photo_bytes']))}), detail {facts['detail']}, {facts['workers']} workers, "
        "through the API",
        f"{env['BENCH_NPROC']} x {env['BENCH_CPU']}, {env['BENCH_KERNEL']}, {now.isoformat()}",
        binary_line(env),
        "",
        f"upload (one POST, curl): {float(facts['upload_s']):.2f} s; compute to {final['status']}: "
        f"{watched['seconds']:.1f} s",
        "",
        f"{'stage (as GET /api/projects/:id reports it)':<46} {'seconds':>8}",
    ] + [f"{stage:<46} {seconds:>8.1f}" for stage, seconds in rows] + [
        "",
        f"{'task kind, from the workers logs':<36} {'tasks':>6} {'worker s':>9} {'first to last':>14}",
    ] + [f"{kind:<36} {e['tasks']:>6} {e['task_seconds']:>9.1f} {e['span_seconds']:>12.1f} s"
         for kind, e in ordered] + [
        f"{'all':<36} {sum(e['tasks'] for e in kinds.values()):>6} "
        f"{sum(e['task_seconds'] for e in kinds.values()):>9.1f}",
        "",
        f"workers: peak VmHWM {', '.join(format(w['hwm_kib'] / 1024, '.0f') for w in workers)} MiB; "
        f"peak sum of VmRSS {watched['workers_rss_sum_peak_kib'] / 1024:.0f} MiB; "
        f"CPU {sum(w['cpu_s'] or 0 for w in workers):.0f} s in all",
        f"gateway: peak VmHWM {watched['gateway_hwm_kib'] / 1024:.1f} MiB, CPU {watched['gateway_cpu_s']:.1f} s "
        "since it started",
        "",
        f"project on disk: {human_bytes(usage['project'])}; images/ {human_bytes(usage['images'])}, work/ "
        f"{human_bytes(usage['work'])}:",
    ] + [f"  work/{name:<20} {human_bytes(size):>10}" for name, size in usage["work_entries"]] + [
        "",
        "work/job.log" + (f", less its {len(warnings)} warning lines (the first: {warnings[0]})" if warnings else "")
        + ":",
    ] + ["  " + line for line in job_log.splitlines() if " warning: " not in line] + [
        "",
        f"Stage times: from the first poll that showed the stage to the next change (polled every "
        f"{facts['interval']} s). Load average {env['BENCH_LOADAVG_BEFORE']} at start, "
        f"{env['BENCH_LOADAVG_AFTER']} at the end.",
    ]
    print("\n".join(lines))
    result = {"benchmark": "scaling-reconstruction", "date": now.isoformat(), "machine": machine(env),
              "binary": {"replica_link": env["BENCH_GATEWAY"], "file_dated": env["BENCH_BUILT"]},
              "git": {"commit": env["BENCH_COMMIT"], "dirty": env["BENCH_DIRTY"] == "yes"},
              "facts": facts, "stage_seconds": dict(rows), "task_kinds": kinds, "watch": watched,
              "disk_bytes": usage,
              "job_log": job_log}
    with open(args.json, "w") as out:
        json.dump(result, out, indent=2)
        out.write("\n")


def main():
    parser = argparse.ArgumentParser(prog="measure.py")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("grow")
    p.add_argument("--url", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--first", type=int, required=True)
    p.add_argument("--last", type=int, required=True)
    p.add_argument("--connections", type=int, default=4)
    p = commands.add_parser("wait-health")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--console", required=True)
    p.add_argument("--ready", required=True)
    p.add_argument("--spawned", required=True)
    p.add_argument("--timeout", type=float, default=120)
    p = commands.add_parser("probe")
    p.add_argument("--url", required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--interval", type=float, default=0.02)
    p = commands.add_parser("sqlite-writes")
    p.add_argument("--database", required=True)
    p.add_argument("--copy", required=True)
    p.add_argument("--writes", type=int, default=2000)
    p = commands.add_parser("watch")
    p.add_argument("--url", required=True)
    p.add_argument("--project", required=True)
    p.add_argument("--gateway-pid", type=int, required=True)
    p.add_argument("--interval", type=float, default=0.25)
    p.add_argument("--timeout", type=float, default=3600)
    for name in ("report", "report-reconstruction"):
        p = commands.add_parser(name)
        p.add_argument("--work", required=True)
        p.add_argument("--json", required=True)
    args = parser.parse_args()
    {"grow": grow, "wait-health": wait_health, "probe": probe, "sqlite-writes": sqlite_writes, "watch": watch,
     "report": report, "report-reconstruction": report_reconstruction}[args.command](args)


if __name__ == "__main__":
    main()
