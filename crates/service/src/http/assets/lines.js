// hft-connector dashboard: the A/B lines pill. Polls /api/status every 2 s; for feeds running over
// two lines ([feed] lines = 2) shows how many lines are up, names a line that is down (the feed is
// then degraded: connected on one line, no redundancy) and the line that leads the book (text
// only, via textContent). Hidden when every feed has one line.
"use strict";
(() => {
  const pill = document.getElementById("lines");
  if (!pill) return;
  // One entry per connection (category): every symbol's status repeats its feed's lines.
  function byCategory(feeds) {
    const out = new Map();
    for (const f of feeds || []) {
      if (Array.isArray(f.lines) && f.lines.length && !out.has(f.category)) {
        out.set(f.category, f.lines);
      }
    }
    return out;
  }
  function describe(category, lines) {
    const up = lines.filter((l) => l.connected);
    const down = lines.filter((l) => !l.connected).map((l) => l.line);
    let text = category + " " + up.length + "/" + lines.length;
    if (down.length) text += " (line " + down.join(", ") + " down)";
    return { text, degraded: down.length > 0, dead: up.length === 0 };
  }
  function detail(category, lines) {
    return lines
      .map((l) => {
        const parts = [category + " line " + l.line + ": " + l.status];
        if (l.pid) parts.push("pid " + l.pid);
        if (l.leader) parts.push("leads the book");
        if (!l.in_sync) parts.push("proving its tape (" + l.held_trades + " held)");
        if (l.behind_updates) parts.push(l.behind_updates + " updates behind");
        parts.push(l.restarts + " restarts");
        return parts.join(", ");
      })
      .join("\n");
  }
  async function poll() {
    try {
      const resp = await fetch("/api/status", { cache: "no-store" });
      const body = await resp.json();
      const cats = byCategory(body.feeds);
      if (!cats.size) {
        pill.hidden = true;
        return;
      }
      pill.hidden = false;
      const parts = [];
      const titles = [];
      let degraded = false;
      let dead = false;
      for (const [category, lines] of cats) {
        const d = describe(category, lines);
        parts.push(d.text);
        titles.push(detail(category, lines));
        degraded = degraded || d.degraded;
        dead = dead || d.dead;
      }
      pill.textContent = "Lines: " + parts.join(", ");
      pill.title = titles.join("\n");
      pill.className = "pill " + (dead ? "pill-bad" : degraded ? "pill-warn" : "pill-ok");
    } catch (e) {
      pill.className = "pill pill-unknown";
    }
  }
  poll();
  setInterval(poll, 2000);
})();
