// hft-connector dashboard: polls /api/status every second, follows /api/events (SSE), draws a
// candlestick chart and a book ladder. Every value that came from the exchange or the service is
// put into the page with textContent (never as HTML).
"use strict";

(function () {
  const STATUS_LABEL = {
    connected: "Connected",
    connecting: "Connecting",
    disconnected: "Disconnected",
    down: "Down",
  };
  // One meaning each (the README says the same).
  const STATUS_MEANING = {
    connected: "Live: every subscription confirmed, data flowing",
    connecting: "Opening the connection or awaiting subscription acknowledgements",
    disconnected: "The connection ended or went stale; reconnecting by itself",
    down: "Cannot deliver: the exchange is unreachable, a subscription was refused, or the feed gave up",
  };
  const LADDER_ROWS = 12;
  const MAX_EVENTS = 150;

  const state = {
    feeds: new Map(), // key -> { status, fetchedAt (local ms) }
    order: [],
    selected: null, // key "category/SYMBOL"
    userSelected: false, // until a card is clicked, prefer a feed that has a book
    clockOffset: 0, // server ms - local ms
    candles: [], // [{start_ms, open, high, low, close}] numbers, ascending
    chartKey: null,
    intervalMs: 60000,
    intervalName: "1",
    derivedFrom: null,
    chartDirty: true,
    book: null,
    events: [],
    lagged: 0,
  };

  const $ = (id) => document.getElementById(id);

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function keyOf(category, symbol) {
    return String(category) + "/" + String(symbol);
  }

  function fmtTime(ms, withMs) {
    if (ms === null || ms === undefined || !isFinite(ms)) return "–";
    const iso = new Date(ms).toISOString();
    return iso.slice(11, withMs ? 23 : 19);
  }

  function fmtSecs(s) {
    if (s === null || s === undefined || !isFinite(s)) return "–";
    if (s < 0) s = 0;
    if (s < 60) return s.toFixed(1) + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + Math.floor(s % 60) + " s";
    return (s / 3600).toFixed(1) + " h";
  }

  function serverNow() {
    return Date.now() + state.clockOffset;
  }

  async function getJson(url) {
    const resp = await fetch(url, { cache: "no-store" });
    let body = null;
    try {
      body = await resp.json();
    } catch (_) {
      body = null;
    }
    if (!resp.ok) {
      const msg = body && body.error ? body.error : "HTTP " + resp.status;
      const err = new Error(msg);
      err.status = resp.status;
      throw err;
    }
    return body;
  }

  // ---------------------------------------------------------------- feeds

  function setStatus(s) {
    const key = keyOf(s.category, s.symbol);
    const known = state.feeds.has(key);
    state.feeds.set(key, { status: s, fetchedAt: Date.now() });
    if (!known) {
      state.order.push(key);
      state.order.sort();
    }
    if (!state.selected) select(key);
  }

  function autoSelect() {
    if (state.userSelected) return;
    const cur = state.selected && state.feeds.get(state.selected);
    if (cur && cur.status.best_bid) return;
    const withBook = state.order.find((k) => state.feeds.get(k).status.best_bid);
    if (withBook) select(withBook);
  }

  function card(key) {
    let c = document.querySelector('[data-feed="' + CSS.escape(key) + '"]');
    if (c) return c;
    c = el("article", "card");
    c.dataset.feed = key;
    c.addEventListener("click", () => {
      state.userSelected = true;
      select(key);
    });
    const head = el("div", "card-head");
    head.append(el("span", "sym"), el("span", "cat"), el("span", "badge"));
    c.append(head);
    const dl = el("dl", "stats");
    const rows = [
      ["last", "Last update", true],
      ["since", "Since last event"],
      ["reconnects", "Reconnects"],
      ["errors", "Errors"],
      ["queue", "Queue size"],
      ["pid", "Worker pid"],
      ["messages", "Messages"],
      ["stale", "Stale detections"],
      ["bid", "Best bid", true],
      ["ask", "Best ask", true],
    ];
    for (const [name, label, wide] of rows) {
      dl.append(el("dt", wide ? "wide" : null, label));
      const dd = el("dd", wide ? "wide" : null, "–");
      dd.dataset.f = name;
      dl.append(dd);
    }
    c.append(dl);
    const bf = el("div", "backfill");
    const bar = el("div", "bar");
    bar.append(el("div", "fill"));
    bf.append(bar, el("div", "backfill-text"));
    c.append(bf);
    $("feeds").append(c);
    return c;
  }

  function field(c, name, text) {
    const e = c.querySelector('[data-f="' + name + '"]');
    if (e && e.textContent !== text) e.textContent = text;
  }

  function pairText(p) {
    if (!Array.isArray(p) || p.length < 2) return "–";
    return String(p[0]) + " × " + String(p[1]);
  }

  function renderFeed(key) {
    const f = state.feeds.get(key);
    if (!f) return;
    const s = f.status;
    const c = card(key);
    c.classList.toggle("selected", key === state.selected);
    c.querySelector(".sym").textContent = s.symbol;
    c.querySelector(".cat").textContent = s.category;
    const badge = c.querySelector(".badge");
    const status = STATUS_LABEL[s.status] ? s.status : "down";
    badge.textContent = STATUS_LABEL[s.status] || String(s.status);
    badge.className = "badge status-" + status;
    badge.dataset.status = String(s.status);
    badge.title = STATUS_MEANING[status] || "";
    c.dataset.status = String(s.status);
    const elapsed = (Date.now() - f.fetchedAt) / 1000;
    const lastMs = s.last_update ? Date.parse(s.last_update) : NaN;
    const ago = isFinite(lastMs) ? (serverNow() - lastMs) / 1000 : null;
    field(
      c,
      "last",
      isFinite(lastMs) ? fmtTime(lastMs, true) + " UTC (" + fmtSecs(ago) + " ago)" : "never"
    );
    const since =
      s.seconds_since_last_event === null || s.seconds_since_last_event === undefined
        ? null
        : s.seconds_since_last_event + elapsed;
    field(c, "since", fmtSecs(since));
    field(c, "reconnects", String(s.reconnects));
    field(c, "errors", String(s.error_count));
    field(c, "queue", String(s.queue_size));
    field(c, "pid", s.pid === null || s.pid === undefined ? (s.process_alive ? "in-process" : "–") : String(s.pid) + (s.process_alive ? "" : " (dead)"));
    field(c, "messages", String(s.messages === undefined ? "–" : s.messages));
    field(c, "stale", String(s.stale_detections === undefined ? "–" : s.stale_detections));
    const asOf = s.status === "connected" || !isFinite(lastMs) ? "" : " (as of " + fmtTime(lastMs, false) + ")";
    field(c, "bid", s.best_bid ? pairText(s.best_bid) + asOf : "–");
    field(c, "ask", s.best_ask ? pairText(s.best_ask) + asOf : "–");
    c.classList.toggle("stale", s.status !== "connected");
    const b = s.backfill || { done: 0, total: 0, state: "pending" };
    const pct = b.total > 0 ? Math.min(100, (100 * b.done) / b.total) : b.state === "done" ? 100 : 0;
    const fill = c.querySelector(".fill");
    fill.style.width = pct.toFixed(1) + "%";
    fill.className = "fill" + (b.state === "done" ? " done" : b.state === "failed" ? " failed" : "");
    const text = "Backfill " + b.done + "/" + b.total + " chunks · " + String(b.state);
    const bt = c.querySelector(".backfill-text");
    if (bt.textContent !== text) bt.textContent = text;
  }

  function renderFeeds() {
    for (const key of state.order) renderFeed(key);
    // Cards stay in category/symbol order whenever each was first seen.
    const cards = [...$("feeds").children].map((c) => c.dataset.feed);
    if (cards.join("|") !== state.order.join("|")) $("feeds").append(...state.order.map(card));
    const all = state.order.map((k) => state.feeds.get(k).status);
    const up = all.filter((s) => s.status === "connected").length;
    const h = $("health");
    if (all.length === 0) {
      h.textContent = "No feeds";
      h.className = "pill pill-unknown";
    } else if (up === all.length) {
      h.textContent = "All " + all.length + " feed" + (all.length > 1 ? "s" : "") + " connected";
      h.className = "pill pill-ok";
    } else {
      h.textContent = up + " of " + all.length + " feeds connected";
      h.className = "pill pill-bad";
    }
    $("clock").textContent = fmtTime(serverNow(), false) + " UTC";
  }

  async function refreshStatus() {
    try {
      const body = await getJson("/api/status");
      if (typeof body.time_ms === "number") state.clockOffset = body.time_ms - Date.now();
      for (const s of body.feeds || []) setStatus(s);
      autoSelect();
      $("feeds-error").hidden = true;
    } catch (e) {
      $("feeds-error").textContent = "Status unavailable: " + e.message;
      $("feeds-error").hidden = false;
    }
    renderFeeds();
  }

  function select(key) {
    if (state.selected === key) return;
    state.selected = key;
    for (const c of document.querySelectorAll(".card")) {
      c.classList.toggle("selected", c.dataset.feed === key);
    }
    loadCandles();
    refreshBook();
  }

  function selectedParts() {
    const f = state.selected && state.feeds.get(state.selected);
    return f ? { symbol: f.status.symbol, category: f.status.category } : null;
  }

  // ---------------------------------------------------------------- book ladder

  async function refreshBook() {
    const p = selectedParts();
    if (!p) return;
    $("book-title").textContent = "Order book · " + p.category + "/" + p.symbol;
    const url =
      "/api/book/" + encodeURIComponent(p.symbol) + "?category=" + encodeURIComponent(p.category) + "&top=" + LADDER_ROWS;
    const wanted = state.selected;
    let book = null;
    let info = "";
    try {
      book = await getJson(url);
      info = "u " + book.u + (book.synced ? "" : " · resyncing");
    } catch (e) {
      info = e.message;
    }
    if (state.selected !== wanted) return; // a newer selection owns the ladder
    const f = state.feeds.get(wanted);
    if (book && f && f.status.status !== "connected") {
      // Not live: the last book received, and when (never shown as if current).
      book.staleAsOf = fmtTime(book.ts_ms, false) + " UTC";
      info = "stale · as of " + book.staleAsOf + " · " + info;
    }
    state.book = book;
    $("book-info").textContent = info;
    renderBook();
  }

  function renderBook() {
    window.HftBook.render(state.book);
  }

  // ---------------------------------------------------------------- candles

  async function loadCandles() {
    const p = selectedParts();
    if (!p) return;
    const interval = $("interval").value;
    const key = state.selected + "@" + interval;
    const url =
      "/api/candles/" + encodeURIComponent(p.symbol) + "?category=" + encodeURIComponent(p.category) +
      "&interval=" + encodeURIComponent(interval) + "&limit=300";
    $("chart-title").textContent = "Candles · " + p.category + "/" + p.symbol + " · " + interval;
    try {
      const body = await getJson(url);
      if (state.selected + "@" + $("interval").value !== key) return;
      state.chartKey = key;
      state.intervalMs = body.interval_ms;
      state.intervalName = body.interval;
      state.derivedFrom = body.derived_from;
      state.candles = (body.candles || []).map((c) => ({
        start_ms: c.start_ms,
        open: Number(c.open),
        high: Number(c.high),
        low: Number(c.low),
        close: Number(c.close),
      }));
      const first = state.candles[0];
      const last = state.candles[state.candles.length - 1];
      const span = first ? " · " + fmtTime(first.start_ms, false) + "–" + fmtTime(last.start_ms, false) + " UTC" : "";
      $("chart-info").textContent =
        body.count + " candles" + (body.derived_from ? " (from 1m)" : "") + span;
    } catch (e) {
      state.candles = [];
      $("chart-info").textContent = e.message;
    }
    state.chartDirty = true;
  }

  // Folds a price update into the candle containing `ts` (display only; the store is exact).
  function foldPrice(start, o, h, l, c) {
    const list = state.candles;
    const last = list[list.length - 1];
    if (last && last.start_ms === start) {
      last.high = Math.max(last.high, h);
      last.low = Math.min(last.low, l);
      last.close = c;
    } else if (!last || start > last.start_ms) {
      list.push({ start_ms: start, open: o, high: h, low: l, close: c });
      if (list.length > 600) list.shift();
    } else {
      return;
    }
    state.chartDirty = true;
  }

  function onCandle(ev) {
    const p = selectedParts();
    const k = ev.candle;
    if (!p || !k || k.symbol !== p.symbol || ev.category !== p.category) return;
    const c = {
      start_ms: k.start,
      open: Number(k.open),
      high: Number(k.high),
      low: Number(k.low),
      close: Number(k.close),
    };
    if (k.interval === state.intervalName) {
      const list = state.candles;
      const i = list.findIndex((x) => x.start_ms === c.start_ms);
      if (i >= 0) list[i] = c;
      else if (!list.length || c.start_ms > list[list.length - 1].start_ms) list.push(c);
      state.chartDirty = true;
    } else if (state.derivedFrom === k.interval) {
      const start = c.start_ms - (c.start_ms % state.intervalMs);
      foldPrice(start, c.open, c.high, c.low, c.close);
    }
  }

  function onTrade(t) {
    const p = selectedParts();
    if (!p || t.symbol !== p.symbol || (t.category && t.category !== p.category)) return;
    const px = Number(t.price);
    if (!isFinite(px) || !state.intervalMs) return;
    const start = t.ts_ms - (t.ts_ms % state.intervalMs);
    foldPrice(start, px, px, px, px);
  }

  function drawChart() {
    window.HftChart.draw($("chart"), state.candles, state.intervalMs);
  }

  // ---------------------------------------------------------------- events

  function eventItem(e) {
    return window.HftEvents.item(e);
  }

  function renderEvents() {
    $("events").replaceChildren(...state.events.map(eventItem));
    $("events-info").textContent = state.events.length + " recent";
  }

  async function loadEvents() {
    try {
      const body = await getJson("/api/events/recent");
      state.events = (body.events || []).slice(0, MAX_EVENTS);
      renderEvents();
    } catch (e) {
      $("events-info").textContent = e.message;
    }
  }

  function onLog(e) {
    state.events.unshift(e);
    if (state.events.length > MAX_EVENTS) state.events.length = MAX_EVENTS;
    $("events").prepend(eventItem(e));
    while ($("events").children.length > MAX_EVENTS) $("events").lastChild.remove();
    $("events-info").textContent = state.events.length + " recent";
  }

  // ---------------------------------------------------------------- live stream

  function streamPill(text, cls) {
    const p = $("stream");
    p.textContent = text;
    p.className = "pill " + cls;
  }

  function parse(msg) {
    try {
      return JSON.parse(msg.data);
    } catch (_) {
      return null;
    }
  }

  function connectStream() {
    const es = new EventSource("/api/events");
    es.onopen = () => {
      streamPill(state.lagged ? "Stream: live (" + state.lagged + " missed)" : "Stream: live", "pill-ok");
      loadEvents();
    };
    es.onerror = () => streamPill("Stream: reconnecting", "pill-warn");
    es.addEventListener("status", (m) => {
      const s = parse(m);
      if (s) {
        setStatus(s);
        renderFeeds();
      }
    });
    es.addEventListener("log", (m) => {
      const e = parse(m);
      if (e) onLog(e);
    });
    es.addEventListener("trade", (m) => {
      const t = parse(m);
      if (t) onTrade(t);
    });
    es.addEventListener("candle", (m) => {
      const c = parse(m);
      if (c) onCandle(c);
    });
    es.addEventListener("book_top", (m) => {
      const b = parse(m);
      if (!b) return;
      const f = state.feeds.get(keyOf(b.category, b.symbol));
      if (f) {
        f.status.best_bid = b.best_bid;
        f.status.best_ask = b.best_ask;
      }
    });
    es.addEventListener("lagged", (m) => {
      const l = parse(m);
      state.lagged += l && l.missed ? l.missed : 0;
      streamPill("Stream: live (" + state.lagged + " missed)", "pill-warn");
      refreshStatus();
    });
  }

  // ---------------------------------------------------------------- start

  function frame() {
    if (state.chartDirty) {
      state.chartDirty = false;
      drawChart();
    }
    requestAnimationFrame(frame);
  }

  function start() {
    $("interval").addEventListener("change", loadCandles);
    window.addEventListener("resize", () => (state.chartDirty = true));
    refreshStatus().then(loadEvents);
    connectStream();
    setInterval(refreshStatus, 1000);
    setInterval(renderFeeds, 200);
    setInterval(refreshBook, 1000);
    setInterval(loadCandles, 30000);
    requestAnimationFrame(frame);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
