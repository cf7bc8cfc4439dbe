// hft-connector dashboard: the recorder pill. Polls /api/status every 2 s; while [sinks.record]
// records, shows what it wrote (frames, bytes, segments) and what it could not (dropped frames,
// failed writes such as a full disk, frames lost to them), as text only (textContent).
"use strict";
(() => {
  const pill = document.getElementById("record");
  if (!pill) return;
  const size = (n) => {
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return (i === 0 ? String(n) : n.toFixed(n < 10 ? 2 : 1)) + " " + units[i];
  };
  const count = (n, one) => n + " " + one + (n === 1 ? "" : "s");
  async function poll() {
    try {
      const resp = await fetch("/api/status", { cache: "no-store" });
      const r = (await resp.json()).record;
      if (!r) {
        pill.hidden = true;
        return;
      }
      pill.hidden = false;
      let text = "Recording: " + count(r.frames, "frame") + ", " + size(r.file_bytes) + ", " +
        count(r.segments, "segment");
      if (r.dropped) text += ", " + r.dropped + " dropped";
      if (r.write_errors) text += ", " + count(r.write_errors, "write error") + " (" + r.lost + " lost)";
      pill.textContent = text;
      for (const k of ["frames", "text_bytes", "file_bytes", "segments", "dropped", "lost", "write_errors"]) {
        pill.dataset[k] = String(r[k]);
      }
      pill.title = (r.last_error ? "last error: " + r.last_error + "\n" : "") + r.dir + "\n" +
        size(r.text_bytes) + " of text in " + size(r.file_bytes) + " of files";
      const cls = r.write_errors ? "pill-bad" : r.dropped ? "pill-warn" : "pill-ok";
      pill.className = "pill " + cls;
    } catch (e) {
      pill.className = "pill pill-unknown";
    }
  }
  poll();
  setInterval(poll, 2000);
})();
