#!/usr/bin/env python3
"""Builds testdata/hftbacktest/bybit-linear-sample.gz (checked in; rerun only to change it).

An hftbacktest-collector-format file (`<local ns> <raw frame>` lines, gzip) made from the real
Bybit frames in testdata/bybit/: the linear BTCUSDT capture (an orderbook.1 snapshot, a trade, an
orderbook.50 delta), the orderbook.50 delta and trade from Bybit's docs, and real acks and pongs.
A depth-50 snapshot is derived from the real delta's levels (sizes 0 dropped) so the book has a
start; further frames re-use the real frames' shapes with later `ts`/`u` to cover what the
converter must get right: a second snapshot (clear and rebuild), a trade whose exchange time is
earlier than the book frame received before it (the event order is split), a frame received
"before" it was sent (negative latency: local times are corrected), `data: null`, and acks.
"""

import gzip
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SRC = os.path.join(ROOT, "testdata", "bybit")
OUT = os.path.join(ROOT, "testdata", "hftbacktest", "bybit-linear-sample.gz")


def lines(name):
    with open(os.path.join(SRC, name)) as f:
        return [l.rstrip("\n") for l in f if l.strip()]


capture = lines("linear-capture.txt")
docs = [json.loads(l) for l in lines("docs-examples.jsonl")]
acks = [l for l in lines("acks-and-pongs.jsonl") if '"op":"subscribe"' in l.replace(" ", "")][:1]
pongs = [l for l in lines("acks-and-pongs.jsonl") if '"pong"' in l][:1]

real_delta = json.loads(capture[2].split(" ", 1)[1])
docs_delta = next(d for d in docs if d.get("topic", "").startswith("orderbook.50"))
docs_trade = next(d for d in docs if d.get("topic", "").startswith("publicTrade"))

t0 = real_delta["ts"]
ns0 = int(capture[2].split(" ", 1)[0])


def frame(ts, topic, kind, data, extra=None):
    f = {"topic": topic, "type": kind, "ts": ts, "data": data}
    f.update(extra or {})
    return json.dumps(f, separators=(",", ":"))


def levels(side):
    return [l for l in real_delta["data"][side] if float(l[1]) > 0]


out = []
for a in acks:
    out.append((ns0 - 3_000_000_000, a))
snap = {"s": "BTCUSDT", "b": levels("b"), "a": levels("a"), "u": real_delta["data"]["u"] - 1, "seq": 1}
out.append((ns0 - 900_000_000, frame(t0 - 1000, "orderbook.50.BTCUSDT", "snapshot", snap, {"cts": t0 - 1001})))
out.append((int(capture[0].split(" ", 1)[0]), capture[0].split(" ", 1)[1]))  # orderbook.1: other depth
out.append((ns0, capture[2].split(" ", 1)[1]))  # the real delta
# The real trade frame, re-timed into the book's minute.
trade = json.loads(capture[1].split(" ", 1)[1])
trade["ts"] = t0 + 5
trade["data"][0]["T"] = t0 + 4
out.append((ns0 + 2_000_000, json.dumps(trade, separators=(",", ":"))))
# The docs delta's levels at a later u, received 1 ms after it was sent.
d = dict(docs_delta["data"], u=real_delta["data"]["u"] + 1, s="BTCUSDT")
d["b"] = [[str(round(float(p) + 78_900, 1)) + "0", q] for p, q in d["b"]]
d["a"] = [[str(round(float(p) + 78_900, 1)) + "0", q] for p, q in d["a"]]
out.append((ns0 + 9_000_000, frame(t0 + 8, "orderbook.50.BTCUSDT", "delta", d, {"cts": t0 + 7})))
# A trade executed before that delta but received after it: split by the event-order correction.
tr = dict(docs_trade["data"][0], T=t0 + 6, p="109160.10", v="0.004", S="Sell", s="BTCUSDT")
out.append((ns0 + 9_500_000, frame(t0 + 9, "publicTrade.BTCUSDT", "snapshot", [tr])))
for p in pongs:
    out.append((ns0 + 10_000_000, p))
# A frame stamped 2 ms "before" the exchange sent it (clock skew): every local time moves later.
out.append(((t0 + 12) * 1_000_000 - 2_000_000, frame(t0 + 12, "orderbook.50.BTCUSDT", "delta", {"s": "BTCUSDT", "b": [], "a": [["109156.40", "0.5"]], "u": real_delta["data"]["u"] + 2, "seq": 9})))
out.append((ns0 + 12_000_000, json.dumps({"topic": "orderbook.50.BTCUSDT", "type": "delta", "ts": t0 + 13, "data": None})))
# A second snapshot: clear and rebuild both sides.
snap2 = {"s": "BTCUSDT", "b": levels("b")[:1], "a": levels("a")[:2], "u": real_delta["data"]["u"] + 3, "seq": 10}
out.append((ns0 + 20_000_000, frame(t0 + 19, "orderbook.50.BTCUSDT", "snapshot", snap2)))

out.sort(key=lambda x: x[0])
text = "".join(f"{ns} {line}\n" for ns, line in out).encode()
with open(OUT, "wb") as f:
    with gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as g:
        g.write(text)
print(f"wrote {OUT}: {len(out)} lines")
