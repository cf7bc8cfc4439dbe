#!/usr/bin/env python3
"""hftbacktest's own Python package against `hft-connector record` + `convert --to hftbacktest`.

  check.py compare INPUT.gz OURS.npz DEPTH
      our .npz equals hftbacktest's `convert_depth(INPUT, single_depth_level=DEPTH)`, row for row
      and dtype for dtype, and passes its `validate_event_order`.

  check.py tour BIN WORKDIR ISOLATION
      starts the simulator and `BIN run` recording ([sinks.record]) in ISOLATION mode, drives a
      fault tour (close, reset, gap, restart, malformed, silence), pauses the market, waits until
      the service's book is at the simulator's final `u`, stops the service (SIGTERM), converts
      the recording, and checks: it equals hftbacktest's own conversion of the same files; it
      loads and backtests in hftbacktest; the backtest's final book equals the simulator's true
      book. Then starts a second recording service and kills it with SIGKILL: every file it left
      reads with Python's gzip (what hftbacktest's converters use) without a truncation error;
      and a third one recording with `compress = "zstd"`: every file reads with `zstd -dc`.
"""

import glob
import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import numpy as np


def compare(inp, ours_path, depth):
    from hftbacktest.data.utils.bybit import convert_depth
    from hftbacktest.data import validate_event_order
    from hftbacktest.types import event_dtype

    ref = convert_depth(inp, single_depth_level=depth)
    ours = np.load(ours_path)["data"]
    assert ours.dtype == event_dtype, f"dtype {ours.dtype} != {event_dtype}"
    assert len(ours) == len(ref), f"{len(ours)} rows, hftbacktest has {len(ref)}"
    if not np.array_equal(ours, ref):
        bad = np.nonzero(ours != ref)[0]
        raise AssertionError(f"{len(bad)} rows differ, first at {bad[0]}: ours {ours[bad[0]]} ref {ref[bad[0]]}")
    validate_event_order(ours)
    print(f"compare: {ours_path} equals hftbacktest's convert_depth of {inp} ({len(ours)} rows)")
    return ours


def http(url, method="GET", body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, method=method, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        text = r.read()
        return json.loads(text) if text else None


def wait(what, pred, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except Exception:  # noqa: BLE001 - the service may still be starting
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Proc:
    """A child process whose stderr/stdout go to a file we can search."""

    def __init__(self, args, log):
        self.log = log
        self.f = open(log, "w")
        self.p = subprocess.Popen(args, stdout=self.f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def text(self):
        with open(self.log) as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.f.close()


def start_sim(binary, work):
    sim = Proc([binary, "simulate", "--listen", "127.0.0.1:0", "--rate", "2000", "--symbols", "BTCUSDT",
                "--categories", "linear", "--seed", "14"], os.path.join(work, "sim.log"))
    addr = wait("the simulator", lambda: re.search(r"simulator listening on ([0-9.:]+)", sim.text()))
    return sim, "http://" + addr.group(1)


def start_service(binary, work, sim_url, isolation, record_dir, name, compress="gzip"):
    cfg = os.path.join(work, f"{name}.toml")
    with open(cfg, "w") as f:
        f.write(f"""
[health]
check_interval_s = 0.2
stale_after_s = 2
grace_s = 1
[heartbeat]
ping_interval_s = 1
pong_timeout_s = 1
[reconnect]
initial_delay_s = 0.05
max_delay_s = 0.5
stable_after_s = 1
[sinks.record]
dir = "{record_dir}"
flush_interval_ms = 50
compress = "{compress}"
""")
    svc = Proc([binary, "run", "--config", cfg, "--isolation", isolation, "--symbols", "BTCUSDT",
                "--category", "linear", "--depth", "50", "--ws-url", sim_url.replace("http", "ws") + "/v5/public",
                "--rest-url", sim_url, "--data-dir", os.path.join(work, name + "-data"), "--listen", "127.0.0.1:0",
                "--backfill-days", "0"], os.path.join(work, name + ".log"))
    m = wait("the service's HTTP address", lambda: re.search(r'"event":"http_listening","addr":"([0-9.:]+)"', svc.text())
             or re.search(r'"addr":"([0-9.:]+)"[^\n]*"event":"http_listening"', svc.text()))
    api = "http://" + m.group(1)
    return svc, api


def connected(api):
    s = http(api + "/api/status")
    return s["healthy"] and s


def reconnects(api):
    return http(api + "/api/status")["feeds"][0].get("reconnects", 0)


def tour(binary, work, isolation):
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    record = os.path.join(work, "record")
    sim, sim_url = start_sim(binary, work)
    try:
        svc, api = start_service(binary, work, sim_url, isolation, record, "svc")
        try:
            wait("a live feed", lambda: connected(api))
            for fault in [{"kind": "close"}, {"kind": "reset"}, {"kind": "gap"}, {"kind": "restart"},
                          {"kind": "malformed", "count": 3}, {"kind": "silence", "seconds": 3}]:
                http(sim_url + "/sim/fault", "POST", fault)
                time.sleep(0.3)  # let the fault act; then wait for the feed to be live again
                wait(f"recovery from {fault['kind']}", lambda: connected(api), 60)
                print(f"tour: {fault['kind']} injected, the feed is live again")
            http(sim_url + "/sim/pause", "POST")
            true_book = http(sim_url + "/sim/book?symbol=BTCUSDT&category=linear&depth=50")
            wait("the service's book at the simulator's final u",
                 lambda: http(api + "/api/book/BTCUSDT?category=linear").get("u") == true_book["u"], 30)
            rec = http(api + "/api/status")["record"]
            assert rec["frames"] > 0 and rec["dropped"] == 0 and rec["lost"] == 0, rec
        finally:
            svc.stop(signal.SIGTERM)
        files = sorted(glob.glob(os.path.join(record, "linear", "BTCUSDT", "*.gz")))
        assert files, "no recording"
        # hftbacktest's converter takes one file, and stops at the first line that is not JSON:
        # give it the segments joined, without the corrupt frames the `malformed` fault sent (our
        # converter reports and skips those itself).
        joined = os.path.join(work, "joined.gz")
        corrupt = 0
        with gzip.open(joined, "wt") as out:
            for f in files:
                with gzip.open(f, "rt") as i:
                    for line in i:
                        try:
                            json.loads(line.partition(" ")[2])
                        except ValueError:
                            corrupt += 1
                            continue
                        out.write(line)
        assert corrupt >= 3, f"the malformed fault's frames are recorded as received ({corrupt})"
        npz = os.path.join(work, "ours.npz")
        subprocess.run([binary, "convert", "--to", "hftbacktest", *files, "-o", npz, "--depth", "50",
                        "--tick-size", "0.1", "--lot-size", "0.001"], check=True)
        compare(joined, npz, 50)
        # Within a 50 KB budget the rows go through sorted runs on disk: the same bytes.
        small = os.path.join(work, "ours-50kb.npz")
        r = subprocess.run([binary, "convert", "--to", "hftbacktest", *files, "-o", small, "--depth", "50",
                            "--max-memory-mb", "0.05"], check=True, capture_output=True, text=True)
        assert "sorted runs on disk" in r.stderr, r.stderr
        with open(npz, "rb") as a, open(small, "rb") as b:
            assert a.read() == b.read(), "the conversion through sorted runs on disk differs"
        compare(joined, small, 50)
        backtest(npz, true_book)
        kill9(binary, work, sim_url, isolation)
    finally:
        sim.stop()


def backtest(npz, true_book):
    from hftbacktest import BacktestAsset, HashMapMarketDepthBacktest

    asset = (BacktestAsset().data([npz]).linear_asset(1.0).constant_order_latency(10_000, 10_000)
             .risk_adverse_queue_model().no_partial_fill_exchange().trading_value_fee_model(0.0002, 0.0007)
             .tick_size(0.1).lot_size(0.001))
    hbt = HashMapMarketDepthBacktest([asset])
    steps = 0
    while hbt.elapse(100_000_000) == 0:
        steps += 1
    depth = hbt.depth(0)
    bids = true_book["bids"]
    asks = true_book["asks"]
    assert abs(depth.best_bid - float(bids[0][0])) < 1e-9, (depth.best_bid, bids[0])
    assert abs(depth.best_ask - float(asks[0][0])) < 1e-9, (depth.best_ask, asks[0])
    for px, qty in bids:
        got = depth.bid_qty_at_tick(round(float(px) / 0.1))
        assert abs(got - float(qty)) < 1e-9, ("bid", px, qty, got)
    for px, qty in asks:
        got = depth.ask_qty_at_tick(round(float(px) / 0.1))
        assert abs(got - float(qty)) < 1e-9, ("ask", px, qty, got)
    hbt.close()
    print(f"backtest: {steps} steps; final book equals the simulator's true book at u={true_book['u']} "
          f"({len(bids)} bids, {len(asks)} asks)")


def kill9(binary, work, sim_url, isolation):
    http(sim_url + "/sim/resume", "POST")
    record = os.path.join(work, "record-kill9")
    svc, api = start_service(binary, work, sim_url, isolation, record, "kill9")
    try:
        wait("a live feed", lambda: connected(api))
        wait("recorded frames on disk", lambda: http(api + "/api/status")["record"]["frames"] > 200)
    finally:
        svc.stop(signal.SIGKILL)
    files = sorted(glob.glob(os.path.join(record, "**", "*.gz"), recursive=True))
    assert files, "no recording"
    lines = 0
    for f in files:
        with gzip.open(f, "rt") as g:  # raises EOFError on a truncated member
            for line in g:
                ns, _, js = line.partition(" ")
                int(ns)
                json.loads(js)
                lines += 1
    print(f"kill -9: {len(files)} files, {lines} lines, all readable by Python's gzip")

    # The same with `compress = "zstd"` (one frame per flush): every file reads with `zstd -dc`.
    record = os.path.join(work, "record-kill9-zstd")
    svc, api = start_service(binary, work, sim_url, isolation, record, "kill9-zstd", "zstd")
    try:
        wait("a live feed", lambda: connected(api))
        frames = wait("recorded frames on disk", lambda: (lambda n: n if n > 200 else 0)(
            http(api + "/api/status")["record"]["frames"]))
    finally:
        svc.stop(signal.SIGKILL)
    files = sorted(glob.glob(os.path.join(record, "**", "*.zst"), recursive=True))
    assert files, "no zstd recording"
    lines = 0
    for f in files:
        text = subprocess.run(["zstd", "-dc", f], check=True, capture_output=True).stdout.decode()
        for line in text.splitlines():
            ns, _, js = line.partition(" ")
            int(ns)
            json.loads(js)
            lines += 1
    assert lines >= frames, (lines, frames)
    print(f"kill -9 (zstd): {len(files)} files, {lines} lines, all readable by zstd -dc")


if __name__ == "__main__":
    if sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif sys.argv[1] == "tour":
        tour(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)
