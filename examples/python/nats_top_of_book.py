#!/usr/bin/env python3
"""A Python strategy's view of hft-connector's NATS JetStream feed (nats-py).

Reads one symbol's trades and order-book updates from the stream that `hft-connector run
--nats-url ...` (or `stream --nats-url ...`) publishes, keeps the exact top of book (Decimal prices
and sizes, book updates applied in `u` order), counts trades, and prints the top of book as it
changes. Redundant publishers are invisible here: JetStream stored each trade and update once.

    pip install nats-py
    python3 examples/python/nats_top_of_book.py --url nats://127.0.0.1:4222 --symbol BTCUSDT

With --until-trade ID and/or --until-u U it stops once it has seen that trade and applied that
book update, and prints a JSON summary (the test suite uses this against the simulator's truth).
With --until-stdin the two targets come later, as one line `TRADE_ID U` on stdin, so it can run
through faults before they are known. --url takes a cluster's servers comma separated: the
client reconnects to any of them and the ordered consumer follows the stream's new leader.
"""

import argparse
import asyncio
import json
import sys
from decimal import Decimal

import nats
from nats.js.api import DeliverPolicy


class Book:
    """An L2 book rebuilt from `book` events (snapshot / delta, levels as [price, size] strings)."""

    def __init__(self):
        self.bids = {}  # Decimal price -> (price text, size text)
        self.asks = {}
        self.u = None
        self.pending = {}  # deltas that arrived ahead of their turn, by u
        self.gaps = 0

    @staticmethod
    def _apply_side(side, levels):
        for price, size in levels:
            if Decimal(size) == 0:
                side.pop(Decimal(price), None)
            else:
                side[Decimal(price)] = (price, size)

    def _apply(self, ev):
        if ev["kind"] == "snapshot":
            self.bids, self.asks = {}, {}
        self._apply_side(self.bids, ev["bids"])
        self._apply_side(self.asks, ev["asks"])
        self.u = ev["u"]

    def on_event(self, ev):
        u = ev["u"]
        if self.u is not None and u <= self.u:
            return  # already applied (two publishers can interleave)
        if ev["kind"] == "snapshot" or self.u is None:
            if ev["kind"] != "snapshot":
                self.pending[u] = ev  # a delta before any snapshot: wait for one
                return
            self._apply(ev)
        elif u == self.u + 1:
            self._apply(ev)
        else:
            self.pending[u] = ev
        # Apply whatever became next in line; drop what is now older than the book.
        while self.u is not None and self.u + 1 in self.pending:
            self._apply(self.pending.pop(self.u + 1))
        self.pending = {k: v for k, v in self.pending.items() if self.u is None or k > self.u}
        if len(self.pending) > 1000:
            # Updates are missing for good: resynchronise on the next snapshot.
            self.gaps += 1
            self.pending.clear()
            self.u = None

    def top(self):
        bid = self.bids[max(self.bids)] if self.bids else None
        ask = self.asks[min(self.asks)] if self.asks else None
        return bid, ask


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="nats://127.0.0.1:4222")
    ap.add_argument("--stream", default=None, help="stream name (default: found by subject)")
    ap.add_argument("--prefix", default="md")
    ap.add_argument("--category", default="linear")
    ap.add_argument("--symbol", default="BTCUSDT")
    ap.add_argument("--until-trade", default=None, help="stop once this trade id was read")
    ap.add_argument("--until-u", type=int, default=None, help="stop once the book reached this u")
    ap.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    ap.add_argument("--quiet", action="store_true", help="print only the final summary")
    ap.add_argument("--until-stdin", action="store_true",
                    help="read `TRADE_ID U` (the --until-trade and --until-u targets) from stdin")
    args = ap.parse_args()

    loop = asyncio.get_running_loop()
    targets = None
    if args.until_stdin:
        targets = loop.run_in_executor(None, sys.stdin.readline)
    nc = await nats.connect(servers=[u.strip() for u in args.url.split(",") if u.strip()],
                            max_reconnect_attempts=-1)
    js = nc.jetstream()
    subject = f"{args.prefix}.bybit.{args.category}.{args.symbol}.*"
    sub = await js.subscribe(
        subject, stream=args.stream, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
    )
    book = Book()
    trade_ids = set()
    trades = duplicates = statuses = 0
    last_top = None
    deadline = None if args.timeout is None else loop.time() + args.timeout

    def done():
        return (args.until_trade is not None or args.until_u is not None) and (
            args.until_trade is None or args.until_trade in trade_ids
        ) and (args.until_u is None or (book.u is not None and book.u >= args.until_u))

    timed_out = False
    while True:
        if targets is not None and targets.done():
            line = targets.result().split()
            targets = None
            args.until_trade, args.until_u = line[0], int(line[1])
        if targets is None and done():
            break
        left = None if deadline is None else deadline - loop.time()
        if left is not None and left <= 0:
            timed_out = True
            break
        try:
            msg = await sub.next_msg(timeout=min(left, 1.0) if left is not None else 1.0)
        except nats.errors.TimeoutError:
            continue
        ev = json.loads(msg.data)
        kind = ev.get("type")
        if kind == "trade":
            trades += 1
            if ev["id"] in trade_ids:
                duplicates += 1
            trade_ids.add(ev["id"])
            if not args.quiet:
                print(f"trade {ev['side']} {ev['qty']} @ {ev['price']}")
        elif kind == "book":
            book.on_event(ev)
            top = book.top()
            if top != last_top and not args.quiet:
                print(f"top {top[0]} / {top[1]} (u={book.u})")
            last_top = top
        else:
            statuses += 1
    await nc.close()
    bid, ask = book.top()
    print(json.dumps({
        "trades": trades,
        "unique_trades": len(trade_ids),
        "duplicates": duplicates,
        "status_events": statuses,
        "book_u": book.u,
        "best_bid": list(bid) if bid else None,
        "best_ask": list(ask) if ask else None,
        "book_gaps": book.gaps,
        "timed_out": timed_out,
    }))
    return 1 if timed_out else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
