#!/usr/bin/env python3
"""Hostile clients and faults against `sisa serve`, on loopback, bounded in
count and time (scripts/abuse runs this; standard library only, plus wrk).

Each part prints what it measured and ends with PASS or FAIL:
  slow      idle and trickling connections; health latency meanwhile
  flood     1,000 deletion requests of 10 ids each, then one id from 50
            clients at once: idempotent answers, every acknowledged id
            deleted, the server's memory
  kill      SIGKILL of the server during an HTTP ingest: all or nothing
  diskfull  a full disk (a small tmpfs) during a checkpoint write and during
            an ingest: a clear error, nothing lost, train and verify after
  wrk       wrk on /v1/score and /v1/status while deletions retrain
"""
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

SISA, WORK = sys.argv[1], sys.argv[2]
PARTS = sys.argv[3].split(",") if len(sys.argv) > 3 else ["slow", "flood", "kill", "diskfull", "wrk"]
results = {}
failed = []


def sisa(*args, check=True):
    p = subprocess.run([SISA, *args], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"sisa {' '.join(args)}: {p.stderr}")
    return p


def make_store(path, n, shards=4, slices=2, epochs="0.05", prefix="r"):
    subprocess.run(["rm", "-rf", path], check=True)
    sisa("init", "--store", path, "--shards", str(shards), "--slices", str(slices), "--preset", "nano",
         "--epochs", epochs, "--seed", "1")
    rec = os.path.join(WORK, f"records-{n}.jsonl")
    with open(rec, "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"{prefix}{i}", "text": f"record {i}: words {i % 97} and {i % 89}"}) + "\n")
    sisa("ingest", "--store", path, rec, "--holdout", "0.05")
    sisa("train", "--store", path)
    tokens = {}
    for role in ["admin", "deleter", "reader"]:
        out = sisa("token", "create", "--store", path, "--role", role, "--name", f"abuse-{role}", "--json").stdout
        tokens[role] = json.loads(out)["token"]
    return tokens


class Server:
    def __init__(self, store, *extra, env=None):
        self.log = open(os.path.join(WORK, "serve.log"), "a")
        self.p = subprocess.Popen([SISA, "serve", "--store", store, "--port", "0", *extra],
                                  stdout=subprocess.PIPE, stderr=self.log, text=True,
                                  env=None if env is None else {**os.environ, **env})
        line = self.p.stdout.readline()
        if "listening" not in line:
            raise RuntimeError(f"sisa serve did not start: {line!r}")
        self.port = int(line.split("http://")[1].split(" ")[0].rsplit(":", 1)[1])
        self.base = f"http://127.0.0.1:{self.port}"

    def peak_mb(self):
        try:
            with open(f"/proc/{self.p.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            return None

    def stop(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            self.p.wait(timeout=60)


def http(method, url, token=None, body=None, timeout=120):
    data = None
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw, status = r.read(), r.status
    except urllib.error.HTTPError as e:
        raw, status = e.read(), e.code
    dt = time.perf_counter() - t0
    try:
        return status, json.loads(raw), dt
    except ValueError:
        return status, raw.decode(errors="replace"), dt


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


def report(name, ok, **figures):
    results[name] = dict(figures, passed=ok)
    print(f"== {name}: {'PASS' if ok else 'FAIL'}")
    for k, v in figures.items():
        print(f"   {k}: {v}")
    if not ok:
        failed.append(name)
    sys.stdout.flush()


def live_ids(server, token):
    ids, after = set(), None
    while True:
        q = f"/v1/records?limit=10000" + (f"&after={after}" if after else "")
        status, page, _ = http("GET", server.base + q, token)
        assert status == 200, page
        ids.update(r["id"] for r in page["records"])
        after = page.get("next")
        if not after:
            return ids


def part_slow():
    store = os.path.join(WORK, "slow")
    make_store(store, 400)
    s = Server(store, "--idle-timeout", "3")
    idle, trickle = [], []
    for _ in range(200):
        c = socket.create_connection(("127.0.0.1", s.port))
        idle.append(c)
    for _ in range(100):
        c = socket.create_connection(("127.0.0.1", s.port))
        c.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        trickle.append(c)
    latencies, t_end = [], time.time() + 12
    next_byte = time.time()
    while time.time() < t_end:
        if time.time() >= next_byte:   # a byte every 2 s on each trickling connection
            for c in trickle:
                try:
                    c.sendall(b"a")
                except OSError:
                    pass
            next_byte = time.time() + 2
        status, _, dt = http("GET", s.base + "/v1/health", timeout=10)
        if status == 200:
            latencies.append(dt * 1000)
        time.sleep(0.05)

    def closed(c):
        c.settimeout(0.2)
        try:
            return c.recv(1) == b""
        except socket.timeout:
            return False
        except OSError:
            return True
    idle_closed = sum(closed(c) for c in idle)
    trickle_closed = sum(closed(c) for c in trickle)
    for c in idle + trickle:
        c.close()
    s.stop()
    report("slow", idle_closed == len(idle) and len(latencies) > 50 and pct(latencies, 99) < 500,
           idle_connections=f"{idle_closed}/{len(idle)} closed by the server after --idle-timeout 3 s",
           trickling_connections=f"{trickle_closed}/{len(trickle)} closed by the server within 12 s (each sent a byte every 2 s)",
           health_during=f"{len(latencies)} answers, p50 {pct(latencies, 50):.1f} ms, p99 {pct(latencies, 99):.1f} ms")


def part_flood():
    store = os.path.join(WORK, "flood")
    tok = make_store(store, 10_200, epochs="0.02")
    s = Server(store, "--coalesce", "1")
    ids = [f"r{i}" for i in range(10_000)]
    answers, lock = [], threading.Lock()

    def client(k):
        for j in range(k, 1000, 8):
            st, body, dt = http("POST", s.base + "/v1/deletions", tok["deleter"], {"ids": ids[10 * j:10 * j + 10]})
            with lock:
                answers.append((st, body, dt, ids[10 * j:10 * j + 10]))
    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flood_s = time.time() - t0
    # One id from 50 clients at once.
    barrier, same = threading.Barrier(50), []

    def one():
        barrier.wait()
        st, body, dt = http("POST", s.base + "/v1/deletions", tok["deleter"], {"ids": ["r10100"]})
        with lock:
            same.append((st, body))
    threads = [threading.Thread(target=one) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    acked = [a for a in answers if a[0] == 202]
    request_ids = [a[1]["request"]["id"] for a in acked] + [b["request"]["id"] for st, b in same if st == 202 and b.get("request")]
    same_codes = sorted(set(st for st, _ in same))
    same_new = sum(1 for st, b in same if st == 202 and b.get("request"))
    same_ok = all(st in (200, 202) and (b.get("request") or "r10100" in b.get("alreadyDeleted", [])) for st, b in same)
    deadline = time.time() + 600
    pending = set(request_ids)
    while pending and time.time() < deadline:
        for rid in list(pending)[:200]:
            st, body, _ = http("GET", s.base + f"/v1/deletions/{rid}", tok["deleter"])
            if st == 200 and body["state"] == "done":
                pending.discard(rid)
        if pending:
            time.sleep(1)
    live = live_ids(s, tok["reader"])
    still = [i for a in acked for i in a[3] if i in live] + (["r10100"] if "r10100" in live else [])
    peak = s.peak_mb()
    s.stop()
    lat = [a[2] * 1000 for a in answers]
    report("flood", len(acked) == 1000 and not pending and not still and same_ok and same_new == 1,
           requests=f"1000 x 10 ids from 8 clients in {flood_s:.1f} s: {len(acked)} answered 202, 202 p50 {pct(lat, 50):.1f} ms, p99 {pct(lat, 99):.1f} ms",
           same_id_50_clients=f"statuses {same_codes}: {same_new} new request, the others name it already deleted",
           done=f"{len(request_ids) - len(pending)}/{len(request_ids)} requests done",
           acknowledged_ids_still_live=len(still),
           server_peak_mb=peak)


def part_kill():
    store = os.path.join(WORK, "kill")
    tok = make_store(store, 300)
    rng = random.Random(7)
    outcomes = []
    # Three kills at seeded times (upload, parse or insert), then two at the
    # points where the outcome flips: the server kills itself once every
    # record is inserted, just before the transaction commits (nothing may
    # remain) and just after (everything must), before it answers.
    plan = [(round(rng.uniform(0.05, 1.5), 2), None) for _ in range(3)] + [(None, "before-commit"), (None, "after-commit")]
    for trial, (delay, point) in enumerate(plan):
        body = "".join(json.dumps({"id": f"k{trial}-{i}", "text": f"killed ingest {trial} {i}"}) + "\n"
                       for i in range(100_000)).encode()
        before = json.loads(sisa("status", "--store", store, "--json").stdout)["records"]
        s = Server(store, env=None if point is None else {"SISA_TEST_KILL_DURING_INGEST": point})
        done = {}
        t = threading.Thread(target=lambda: done.setdefault("r", http_quiet("POST", s.base + "/v1/records", tok["admin"], body)))
        t.start()
        if point is None:
            time.sleep(delay)   # a seeded kill time, somewhere in the upload, the parse or the insert
            s.stop(signal.SIGKILL)
        else:
            s.p.wait(timeout=120)
        t.join()
        after = json.loads(sisa("status", "--store", store, "--json").stdout)["records"]
        if after != before:
            sisa("train", "--store", store)   # the kept ingest's stages, so verify compares trained shards
        verify = sisa("verify", "--store", store, check=False)
        outcomes.append((f"{delay} s" if point is None else point, before, after, verify.returncode))
    flips = {o[0]: o for o in outcomes}
    ok = all(a in (b, b + 100_000) and v == 0 for _, b, a, v in outcomes) \
        and flips["before-commit"][2] == flips["before-commit"][1] \
        and flips["after-commit"][2] == flips["after-commit"][1] + 100_000
    report("kill", ok, trials=[f"kill at {d}: {b} -> {a} live records, verify exit {v}" for d, b, a, v in outcomes])


def http_quiet(*a):
    try:
        return http(*a)
    except Exception as e:   # the server was killed mid-request
        return ("killed", str(e), 0)


def part_diskfull():
    mnt = os.path.join(WORK, "full")
    os.makedirs(mnt, exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", mnt]).returncode != 0:
        report("diskfull", True, skipped="cannot mount a tmpfs here (needs root)")
        return
    try:
        store = os.path.join(mnt, "store")
        sisa("init", "--store", store, "--shards", "2", "--slices", "2", "--preset", "nano", "--epochs", "0.5", "--seed", "1")
        rec = os.path.join(WORK, "full.jsonl")
        with open(rec, "w") as f:
            for i in range(4000):
                f.write(json.dumps({"id": f"f{i}", "text": f"record {i} on a small disk"}) + "\n")
        sisa("ingest", "--store", store, rec)
        filler = os.path.join(mnt, "filler")

        def fill(leave_kb):
            st = os.statvfs(mnt)
            free = st.f_bavail * st.f_frsize
            with open(filler, "ab") as f:
                f.write(b"\0" * max(0, free - leave_kb * 1024))
        fill(64)   # less than one checkpoint (nano: about 1.4 MB compressed)
        train = sisa("train", "--store", store, check=False)
        os.remove(filler)
        verify_full = sisa("verify", "--store", store, check=False)
        train2 = sisa("train", "--store", store, check=False)
        verify2 = sisa("verify", "--store", store, check=False)
        # Ingest on a full disk.
        before = json.loads(sisa("status", "--store", store, "--json").stdout)["records"]
        big = os.path.join(WORK, "big.jsonl")
        with open(big, "w") as f:
            for i in range(60_000):
                f.write(json.dumps({"id": f"g{i}", "text": f"another record {i} that will not fit " * 2}) + "\n")
        fill(32)
        ingest = sisa("ingest", "--store", store, big, check=False)
        mid = json.loads(sisa("status", "--store", store, "--json").stdout)["records"]
        os.remove(filler)
        ingest2 = sisa("ingest", "--store", store, big, check=False)
        after = json.loads(sisa("status", "--store", store, "--json").stdout)["records"]
        last = lambda p: (p.stderr.strip().splitlines() or [""])[-1][:160]
        ok = (train.returncode != 0 and train2.returncode == 0 and verify2.returncode == 0
              and ingest.returncode != 0 and mid == before and ingest2.returncode == 0 and after == before + 60_000)
        report("diskfull", ok,
               train_on_full_disk=f"exit {train.returncode}: {last(train)}",
               verify_right_after=f"exit {verify_full.returncode}",
               train_after_freeing=f"exit {train2.returncode}; verify exit {verify2.returncode}",
               ingest_on_full_disk=f"exit {ingest.returncode}: {last(ingest)}; live records {before} -> {mid}",
               ingest_after_freeing=f"exit {ingest2.returncode}; live records {after}")
    finally:
        subprocess.run(["umount", mnt])


def part_wrk():
    store = os.path.join(WORK, "wrk")
    tok = make_store(store, 4000)
    s = Server(store, "--coalesce", "0.2")
    lua = os.path.join(WORK, "score.lua")
    with open(lua, "w") as f:
        f.write('wrk.method = "POST"\nwrk.body = \'{"texts": ["record 12: words 12 and 12"]}\'\n'
                'wrk.headers["Content-Type"] = "application/json"\n')
    stop = threading.Event()
    deletions = []

    def deleter():
        i = 0
        while not stop.is_set():
            st, body, dt = http("POST", s.base + "/v1/deletions", tok["deleter"], {"ids": [f"r{i}"]})
            deletions.append(st)
            i += 1
            stop.wait(2)
    d = threading.Thread(target=deleter)
    d.start()
    out = {}
    for name, extra in [("score", ["-s", lua]), ("status", [])]:
        p = subprocess.run(["wrk", "-t2", "-c8", "-d10s", "--latency", "-H", f"Authorization: Bearer {tok['reader']}", *extra,
                            s.base + f"/v1/{name}"], capture_output=True, text=True)
        lines = p.stdout.splitlines()
        lat = {l.split()[0]: l.split()[1] for l in lines if l.strip().startswith(("50%", "99%"))}
        rps = next((l.split()[1] for l in lines if l.startswith("Requests/sec")), "?")
        non2xx = next((l.strip() for l in lines if "Non-2xx" in l), "0 non-2xx")
        out[name] = f"{rps} requests/s, p50 {lat.get('50%')}, p99 {lat.get('99%')}, {non2xx}"
    stop.set()
    d.join()
    s.stop()
    report("wrk", all("Non-2xx" not in v for v in out.values()) and all(c == 202 for c in deletions),
           score=out["score"], status=out["status"], deletions_meanwhile=f"{len(deletions)}, statuses {sorted(set(deletions))}")


for part in PARTS:
    globals()[f"part_{part}"]()
with open(os.path.join(WORK, "abuse.json"), "w") as f:
    json.dump(results, f, indent=2)
print("failed parts:", ", ".join(failed) if failed else "none")
sys.exit(1 if failed else 0)
