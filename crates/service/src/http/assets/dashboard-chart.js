// hft-connector dashboard: the candlestick chart, drawn on a canvas (numbers only, no exchange
// text). Loaded before dashboard.js, which calls HftChart.draw(canvas, candles, intervalMs).
"use strict";

(function () {
  function fmtTime(ms) {
    if (ms === null || ms === undefined || !isFinite(ms)) return "–";
    return new Date(ms).toISOString().slice(11, 19);
  }

  function draw(canvas, candles, intervalMs) {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth;
    const h = canvas.clientHeight;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const axisW = 78;
    const axisH = 22;
    const plotW = w - axisW;
    const plotH = h - axisH;
    ctx.font = "11px system-ui, sans-serif";
    // Candle pitch: wide when few candles, at least 4 px (older ones scroll off the left).
    const step = Math.max(4, Math.min(14, Math.floor(plotW / Math.max(1, candles.length))));
    const n = Math.max(1, Math.floor(plotW / step));
    const shown = candles.slice(-n);
    if (!shown.length) {
      ctx.fillStyle = "#8595a8";
      ctx.fillText("No candles yet", 12, 24);
      return;
    }
    let lo = Infinity;
    let hi = -Infinity;
    for (const c of shown) {
      lo = Math.min(lo, c.low);
      hi = Math.max(hi, c.high);
    }
    if (hi === lo) {
      hi += 1;
      lo -= 1;
    }
    const pad = (hi - lo) * 0.06;
    hi += pad;
    lo -= pad;
    const top = 10;
    const y = (v) => top + (plotH - top) - ((v - lo) / (hi - lo)) * (plotH - top);
    // grid + price axis
    ctx.strokeStyle = "#253041";
    ctx.fillStyle = "#8595a8";
    ctx.lineWidth = 1;
    for (let i = 0; i <= 5; i++) {
      const v = lo + ((hi - lo) * i) / 5;
      const yy = Math.round(y(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(0, yy);
      ctx.lineTo(plotW, yy);
      ctx.stroke();
      ctx.fillText(v.toFixed(v >= 1000 ? 1 : 4), plotW + 6, yy + 4);
    }
    // candles, newest at the right edge
    const x0 = plotW - shown.length * step;
    const body = Math.max(1, step - 3);
    shown.forEach((c, i) => {
      const x = x0 + i * step;
      const up = c.close >= c.open;
      const color = up ? "#1fbf75" : "#ef4f5f";
      ctx.strokeStyle = color;
      ctx.fillStyle = color;
      const cx = Math.round(x + body / 2) + 0.5;
      ctx.beginPath();
      ctx.moveTo(cx, y(c.high));
      ctx.lineTo(cx, y(c.low));
      ctx.stroke();
      const bodyTop = y(Math.max(c.open, c.close));
      const bh = Math.max(1, Math.abs(y(c.open) - y(c.close)));
      ctx.fillRect(x, bodyTop, body, bh);
    });
    // time axis
    ctx.fillStyle = "#8595a8";
    const every = Math.max(1, Math.ceil(90 / step));
    for (let i = shown.length - 1; i >= 0; i -= every) {
      const x = x0 + i * step;
      if (x < 20) break;
      const label = intervalMs >= 86400000
        ? new Date(shown[i].start_ms).toISOString().slice(5, 10)
        : fmtTime(shown[i].start_ms).slice(0, 5);
      ctx.fillText(label, x - 14, plotH + 15);
    }
    // last price line
    const last = shown[shown.length - 1];
    const ly = Math.round(y(last.close)) + 0.5;
    ctx.strokeStyle = "#4c9aff";
    ctx.setLineDash([4, 3]);
    ctx.beginPath();
    ctx.moveTo(0, ly);
    ctx.lineTo(plotW, ly);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = "#4c9aff";
    ctx.fillRect(plotW + 2, ly - 8, axisW - 4, 16);
    ctx.fillStyle = "#0f1419";
    ctx.fillText(String(last.close), plotW + 6, ly + 4);
  }

  window.HftChart = { draw: draw };
})();
