// hft-connector dashboard: the order book ladder (exact decimal strings, put in with textContent).
// A book of a feed that is not connected is marked stale with the time it is from. Loaded before
// dashboard.js, which calls HftBook.render(book).
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function ladderRows(tbody, levels, cls, reverse) {
    const rows = [];
    let total = 0;
    const cum = levels.map((l) => (total += Number(l[1])));
    const max = total || 1;
    levels.forEach((l, i) => {
      const tr = el("tr", cls);
      const price = el("td", "num price", l[0]);
      const size = el("td", "num", l[1]);
      const tot = el("td", "num", cum[i].toLocaleString(undefined, { maximumFractionDigits: 6 }));
      const bar = el("div", "depth");
      bar.style.width = ((100 * cum[i]) / max).toFixed(1) + "%";
      tot.append(bar);
      tr.append(price, size, tot);
      rows.push(tr);
    });
    if (reverse) rows.reverse();
    tbody.replaceChildren(...rows);
  }

  function render(b) {
    if (!b) {
      $("asks").replaceChildren();
      $("bids").replaceChildren();
      $("spread").textContent = "no book";
      return;
    }
    ladderRows($("asks"), b.asks || [], "ask", true);
    ladderRows($("bids"), b.bids || [], "bid", false);
    const spread =
      b.spread !== null && b.spread !== undefined ? "spread " + b.spread + " · mid " + b.mid : "–";
    $("spread").textContent = b.staleAsOf ? "stale · as of " + b.staleAsOf + " · " + spread : spread;
    $("asks").closest("table").classList.toggle("stale", Boolean(b.staleAsOf));
  }

  window.HftBook = { render: render };
})();
