#!/usr/bin/env python3
"""Compatibility smoke test: Bybit's official Python SDK (pybit) against the simulator.

Streams trades and an order book over pybit's WebSocket client and calls pybit's HTTP get_kline,
changing nothing but the base URLs. Checks that pybit's book equals the simulator's true book.

Usage: pybit_smoke.py http://127.0.0.1:PORT
"""

import json
import sys
import time
import urllib.request

import pybit.unified_trading as unified_trading

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:9100"

# The only change for the WebSocket client: the public stream URL template.
unified_trading.PUBLIC_WSS = BASE.replace("http://", "ws://") + "/v5/public/{CHANNEL_TYPE}"

from pybit.unified_trading import HTTP, WebSocket  # noqa: E402


def sim(path, method="GET"):
    req = urllib.request.Request(BASE + path, method=method)
    with urllib.request.urlopen(req, timeout=5) as r:
        body = r.read()
        return json.loads(body) if body else None


def main():
    trades = []
    books = []
    ws = WebSocket(testnet=False, channel_type="linear")
    ws.trade_stream(symbol="BTCUSDT", callback=lambda m: trades.extend(m["data"]))
    ws.orderbook_stream(depth=50, symbol="BTCUSDT", callback=lambda m: books.append(m["data"]))
    spot = WebSocket(testnet=False, channel_type="spot")
    spot_trades = []
    spot.trade_stream(symbol="ETHUSDT", callback=lambda m: spot_trades.extend(m["data"]))

    deadline = time.time() + 40
    while time.time() < deadline and (len(trades) < 5 or len(books) < 20 or not spot_trades):
        time.sleep(0.1)
    assert len(trades) >= 5, f"only {len(trades)} linear trades"
    assert len(books) >= 20, f"only {len(books)} book updates"
    assert spot_trades, "no spot trades"

    # Freeze the market, wait for pybit's book to reach the true book's u (the frame itself, not
    # a pause: the guard only turns a hang into a failure), then compare with the ground truth.
    sim("/sim/pause", "POST")
    truth = sim("/sim/book?symbol=BTCUSDT&category=linear&depth=50")
    deadline = time.time() + 60
    while books[-1]["u"] != truth["u"] and time.time() < deadline:
        time.sleep(0.05)
    book = books[-1]
    bids = sorted(book["b"], key=lambda l: float(l[0]), reverse=True)
    asks = sorted(book["a"], key=lambda l: float(l[0]))
    assert book["u"] == truth["u"], (book["u"], truth["u"])
    assert bids == truth["bids"], "pybit's bids differ from the true book"
    assert asks == truth["asks"], "pybit's asks differ from the true book"

    # The trades pybit saw are the simulator's journaled trades.
    journal = sim("/sim/journal?symbol=BTCUSDT&type=trade&category=linear")
    journal_ids = {e["id"] for e in journal}
    assert all(t["i"] in journal_ids for t in trades), "a trade pybit saw is not in the journal"

    # The only change for the HTTP client: its endpoint.
    http = HTTP(testnet=False)
    http.endpoint = BASE
    k = http.get_kline(category="linear", symbol="BTCUSDT", interval="1", limit=5)
    rows = k["result"]["list"]
    assert k["retCode"] == 0 and len(rows) == 5, k
    starts = [int(r[0]) for r in rows]
    assert starts == sorted(starts, reverse=True), "kline is newest first"
    recent = http.get_public_trade_history(category="linear", symbol="BTCUSDT", limit=3)
    assert recent["retCode"] == 0 and len(recent["result"]["list"]) == 3, recent

    sim("/sim/resume", "POST")
    ws.exit()
    spot.exit()
    print(
        f"pybit OK: {len(trades)} linear trades, {len(spot_trades)} spot trades, "
        f"{len(books)} book updates (u={book['u']} equals the true book), "
        f"{len(rows)} klines newest first"
    )


if __name__ == "__main__":
    main()
