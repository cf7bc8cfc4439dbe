// hft-connector dashboard: the sinks pill. Polls /api/status every 2 s; when a NATS sink is
// configured shows its state, what it stored and what it dropped (text only, via textContent).
"use strict";
(() => {
  const pill = document.getElementById("nats");
  if (!pill) return;
  async function poll() {
    try {
      const resp = await fetch("/api/status", { cache: "no-store" });
      const body = await resp.json();
      const n = body.sinks && body.sinks.nats;
      if (!n) {
        pill.hidden = true;
        return;
      }
      pill.hidden = false;
      let text = "NATS " + n.stream + ": " + n.state + ", " + n.published + " stored";
      if (n.duplicates) text += ", " + n.duplicates + " dup";
      if (n.dropped) text += ", " + n.dropped + " dropped";
      pill.textContent = text;
      pill.title = (n.last_error ? "last error: " + n.last_error + "\n" : "") + n.url;
      const cls = n.state !== "connected" ? "pill-bad" : n.dropped ? "pill-warn" : "pill-ok";
      pill.className = "pill " + cls;
    } catch (e) {
      pill.className = "pill pill-unknown";
    }
  }
  poll();
  setInterval(poll, 2000);
})();
