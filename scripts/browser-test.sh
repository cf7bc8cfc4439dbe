#!/usr/bin/env bash
# Browser test of the dashboard in headless Chromium (Debian's `chromium`, installed if missing).
#
# Default (real service): starts `hft-connector simulate` and `hft-connector run --isolation
# in-process` wired together, loads the dashboard, waits for linear/BTCUSDT to show "Connected",
# injects a fault into the simulator (connection reset, then reconnects refused for 4 s), sees the badge leave
# Connected and come back, and saves screenshots to target/dashboard.png (after recovery) and
# target/dashboard-fault.png (during the fault). The service records raw frames (--record-dir) into
# a directory where linear/BTCUSDT is a file, so that symbol's frames fail to write while acks and
# pongs record: the recorder pill must show frames, segments and the write errors, in red.
#
#   scripts/browser-test.sh            # real service (needs `run`)
#   scripts/browser-test.sh --sample   # the example server (examples/http_sample.rs): fake feeds,
#                                      # linear/ETHUSDT cycles through every status by itself
#   scripts/browser-test.sh --shot     # example server: load, wait 5 s, save
#                                      # target/dashboard-sample.png (for a look), no assertions
#
# Chromium is driven over the DevTools protocol on a pipe (--remote-debugging-pipe) by a small
# Python 3 program (stdlib only). Environment: HFT_BIN (binary; default target/debug/hft-connector),
# HFT_RUN_BIN (binary for `run` only; default HFT_BIN), BROWSER_TEST_TIMEOUT (seconds for each wait;
# default 30).
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=real
SHOT=0
[ "${1:-}" = "--sample" ] && MODE=sample
[ "${1:-}" = "--shot" ] && MODE=sample && SHOT=1

if ! command -v chromium >/dev/null 2>&1; then
  echo "== installing Debian's chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }

TARGET_DIR=$(cargo metadata --format-version 1 --no-deps 2>/dev/null \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' || echo target)
mkdir -p "$TARGET_DIR"
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] && kill "$p" 2>/dev/null || true
  done
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] && wait "$p" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() { # url seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    if python3 - "$1" <<'EOF' 2>/dev/null; then return 0; fi
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=1)
except urllib.error.HTTPError:
    pass  # any HTTP answer means the server is up
EOF
    sleep 0.1
  done
  echo "timed out waiting for $1" >&2
  return 1
}

if [ "$MODE" = sample ]; then
  cargo build --quiet --example http_sample
  "$TARGET_DIR/debug/examples/http_sample" --listen 127.0.0.1:0 >"$WORK/sample.out" 2>"$WORK/sample.err" &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q '^listening on' "$WORK/sample.out" && break; sleep 0.1; done
  DASH=$(sed -n 's/^listening on //p' "$WORK/sample.out")
  [ -n "$DASH" ] || { cat "$WORK/sample.err" >&2; exit 1; }
  SIM=""
  FEED="linear/ETHUSDT"
else
  BIN=${HFT_BIN:-}
  if [ -z "$BIN" ]; then
    cargo build --quiet --bin hft-connector
    BIN="$TARGET_DIR/debug/hft-connector"
  fi
  P1=$(free_port)
  P2=$(free_port)
  SIM="http://127.0.0.1:$P1"
  DASH="http://127.0.0.1:$P2"
  "$BIN" simulate --listen "127.0.0.1:$P1" --symbols BTCUSDT --categories linear --rate 100 \
    >"$WORK/sim.out" 2>"$WORK/sim.err" &
  PIDS+=($!)
  wait_http "$SIM/sim/stats" 20
  mkdir -p "$WORK/record/linear"
  echo "not a directory" >"$WORK/record/linear/BTCUSDT"
  "${HFT_RUN_BIN:-$BIN}" run --record-dir "$WORK/record" --isolation in-process --ws-url "ws://127.0.0.1:$P1/v5/public" --rest-url "$SIM" \
    --symbols BTCUSDT --category linear --depth 50 --data-dir "$WORK/data" \
    --listen "127.0.0.1:$P2" --backfill-days 0.01 >"$WORK/run.out" 2>"$WORK/run.err" &
  RUN_PID=$!
  PIDS+=($RUN_PID)
  if ! wait_http "$DASH/api/status" 30; then
    echo "--- run stderr (tail)" >&2
    tail -20 "$WORK/run.err" >&2
    exit 1
  fi
  FEED="linear/BTCUSDT"
fi

echo "== dashboard $DASH (feed $FEED${SIM:+, simulator $SIM})"
set +e
python3 - "$DASH" "$SIM" "$FEED" "$TARGET_DIR" "${BROWSER_TEST_TIMEOUT:-30}" "$SHOT" <<'EOF'
"""Drives headless Chromium over the DevTools protocol on a pipe (NUL-delimited JSON on fds 3/4)."""
import base64, json, os, subprocess, sys, tempfile, time, urllib.request

dash, sim, feed, target_dir, timeout = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
shot_only = sys.argv[6] == "1"
started = time.time()

def log(msg):
    print(f"[{time.time() - started:5.1f}s] {msg}", flush=True)

to_chrome_r, to_chrome_w = os.pipe()
from_chrome_r, from_chrome_w = os.pipe()

def child_fds():
    # Chromium reads commands on fd 3 and writes answers on fd 4.
    a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)
    os.dup2(a, 3)
    os.dup2(b, 4)
    os.set_inheritable(3, True)
    os.set_inheritable(4, True)

profile = tempfile.mkdtemp(prefix="hft-chromium-")
chrome = subprocess.Popen(
    ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
     "--disable-background-networking", "--disable-component-update", "--disable-sync",
     "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1400,1050",
     f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
    preexec_fn=child_fds, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
os.close(to_chrome_r)
os.close(from_chrome_w)
wfile = os.fdopen(to_chrome_w, "wb", buffering=0)
rfile = os.fdopen(from_chrome_r, "rb", buffering=0)
buf = b""
next_id = 0
session = None

def send(method, params=None, use_session=True):
    global next_id, buf
    next_id += 1
    msg = {"id": next_id, "method": method, "params": params or {}}
    if use_session and session:
        msg["sessionId"] = session
    wfile.write(json.dumps(msg).encode() + b"\0")
    while True:
        while b"\0" not in buf:
            chunk = rfile.read(1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            buf += chunk
        raw, buf = buf.split(b"\0", 1)
        reply = json.loads(raw)
        if reply.get("id") == next_id:
            if "error" in reply:
                raise RuntimeError(f"{method}: {reply['error']}")
            return reply.get("result", {})

def js(expr):
    r = send("Runtime.evaluate", {"expression": expr, "returnByValue": True})
    return r.get("result", {}).get("value")

def wait_for(what, cond, limit=timeout):
    end = time.time() + limit
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out after {limit:.0f} s waiting for {what}")

def screenshot(path):
    data = send("Page.captureScreenshot", {"format": "png"})["data"]
    with open(path, "wb") as f:
        f.write(base64.b64decode(data))
    log(f"screenshot {path}")

def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.read().decode()

badge = f'document.querySelector(\'[data-feed="{feed}"] .badge\')'
ok = False
try:
    target = send("Target.createTarget", {"url": "about:blank"}, use_session=False)["targetId"]
    session = send("Target.attachToTarget", {"targetId": target, "flatten": True}, use_session=False)["sessionId"]
    send("Page.enable")
    send("Runtime.enable")
    send("Emulation.setDeviceMetricsOverride", {"width": 1400, "height": 1050, "deviceScaleFactor": 1, "mobile": False})
    send("Page.navigate", {"url": dash + "/"})
    log(f"loading {dash}/")
    wait_for("the dashboard to render the feed card", lambda: js(f"!!{badge}"))
    if shot_only:
        time.sleep(5)
        screenshot(os.path.join(target_dir, "dashboard-sample.png"))
        log("chart: " + str(js("document.getElementById('chart-info').textContent")))
        log("book: " + str(js("document.getElementById('book-info').textContent")))
        raise SystemExit(0)
    # Record every status the badge shows, however briefly (MutationObserver in the page).
    js(f"""(() => {{
        window.__seen = [];
        const b = {badge};
        const note = () => {{ const s = b.dataset.status; if (window.__seen[window.__seen.length-1] !== s) window.__seen.push(s); }};
        note();
        new MutationObserver(note).observe(b, {{attributes: true, characterData: true, childList: true, subtree: true}});
    }})()""")
    wait_for("badge 'Connected'", lambda: js(f"{badge}.textContent") == "Connected")
    log(f"{feed} shows Connected")
    # The page must not have turned any exchange text into markup.
    assert js("document.querySelectorAll('#events script, #events img, .card script, .card img').length") == 0
    js("window.__seen = ['connected']")
    if sim:
        # Drop the connection, then refuse reconnects for a while (refuse also resets new HTTP
        # connections to the simulator, so it must come last).
        log(post(sim + "/sim/fault", {"kind": "reset"}))
        log(post(sim + "/sim/fault", {"kind": "refuse", "seconds": 4}))
    else:
        log("sample mode: waiting for the feed to change by itself")
    seen = wait_for("the badge to leave Connected",
                    lambda: (lambda s: s if s and any(x != "connected" for x in s) else None)(js("window.__seen")))
    log(f"status changed: {seen}")
    time.sleep(0.3)
    screenshot(os.path.join(target_dir, "dashboard-fault.png"))
    wait_for("badge 'Connected' again", lambda: js(f"{badge}.textContent") == "Connected", limit=max(timeout, 45))
    log(f"recovered; statuses seen: {js('window.__seen')}")
    wait_for("candles on the chart", lambda: js("(document.getElementById('chart-info').textContent || '').includes('candles')"), limit=10)
    if sim:
        pill = "document.getElementById('record')"
        text = wait_for("the recorder pill with frames, a segment and write errors", lambda: js(
            f"(() => {{ const p = {pill}; return p && !p.hidden && +p.dataset.frames > 0 && "
            f"+p.dataset.segments > 0 && +p.dataset.write_errors > 0 && p.textContent; }})()"))
        log(f"recorder pill: {text}")
        assert js(f"{pill}.className") == "pill pill-bad", js(f"{pill}.className")
        shown = {k: int(js(f"{pill}.dataset.{k}")) for k in ["frames", "segments", "write_errors", "lost", "dropped"]}
        with urllib.request.urlopen(dash + "/api/status", timeout=5) as r:
            rec = json.load(r)["record"]
        for k, v in shown.items():
            assert 0 <= v <= rec[k], (k, v, rec)  # counters only grow: the page is at most 2 s behind
        plural = lambda n, word: f"{n} {word}" + ("" if n == 1 else "s")
        assert plural(shown["frames"], "frame") in text and plural(shown["write_errors"], "write error") in text, text
        assert "last error:" in js(f"{pill}.title"), js(f"{pill}.title")
    time.sleep(1.0)
    screenshot(os.path.join(target_dir, "dashboard.png"))
    ok = True
except SystemExit:
    ok = True
except Exception as e:  # noqa: BLE001 - report and fail
    log(f"FAILED: {e}")
    try:
        screenshot(os.path.join(target_dir, "dashboard-failure.png"))
        log("page text: " + str(js("document.body.innerText"))[:1500])
    except Exception:
        pass
finally:
    try:
        send("Browser.close", use_session=False)
    except Exception:
        pass
    try:
        chrome.wait(timeout=5)
    except subprocess.TimeoutExpired:
        chrome.kill()
    subprocess.run(["rm", "-rf", profile])
log("browser test " + ("passed" if ok else "FAILED"))
sys.exit(0 if ok else 1)
EOF
RC=$?
set -e
if [ $RC -ne 0 ] && [ "$MODE" = real ]; then
  echo "--- run stderr (tail)" >&2
  tail -30 "$WORK/run.err" >&2 || true
fi
exit $RC
