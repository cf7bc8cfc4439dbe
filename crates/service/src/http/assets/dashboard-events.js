// hft-connector dashboard: one row of the event list. Every row names its feed (category and
// symbol, or the category's whole connection) and a readable UTC time; all text goes in with
// textContent. Loaded before dashboard.js, which calls HftEvents.item(event).
"use strict";

(function () {
  const LEVELS = ["INFO", "WARN", "ERROR"];

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  // "HH:MM:SS.mmm" UTC, the date too when it is not today.
  function when(timestamp) {
    const t = Date.parse(timestamp);
    if (!isFinite(t)) return String(timestamp);
    const iso = new Date(t).toISOString();
    const today = new Date().toISOString().slice(0, 10);
    const time = iso.slice(11, 23);
    return iso.slice(0, 10) === today ? time : iso.slice(0, 10) + " " + time;
  }

  // The feed an event is about: "linear/BTCUSDT", "linear (all symbols)" for its connection, or
  // "service" for the service itself.
  function feedName(e) {
    if (e.symbol) return (e.category ? e.category + "/" : "") + e.symbol;
    if (e.category) return e.category + " (all symbols)";
    return "service";
  }

  function item(e) {
    const li = el("li");
    li.title = "UTC";
    li.append(
      el("span", "t", when(e.timestamp)),
      el("span", "lvl lvl-" + (LEVELS.includes(e.level) ? e.level : "INFO"), e.level),
      el("span", "ev", e.event),
      el("span", "feed", feedName(e)),
      el("span", "detail-text", e.detail)
    );
    return li;
  }

  window.HftEvents = { item: item, feedName: feedName, when: when };
})();
