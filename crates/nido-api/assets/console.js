// nido console: keeps the fleet funnel and the onboarding-rate chart live
// by polling /api/v1/overview (same origin, the session cookie) every 2 s.
"use strict";
(function () {
  const cells = document.querySelectorAll("[data-funnel]");
  if (cells.length === 0) return;
  const line = document.querySelector("#rate polyline");
  const now = document.getElementById("rate-now");
  const samples = []; // [time in ms, active count]
  const rates = [];
  const WIDTH = 600, HEIGHT = 120, KEEP = 90;

  function draw() {
    if (!line || rates.length === 0) return;
    const max = Math.max(1, ...rates);
    const step = WIDTH / Math.max(1, KEEP - 1);
    const points = rates.map((r, i) => {
      const x = (KEEP - rates.length + i) * step;
      const y = HEIGHT - 4 - (r / max) * (HEIGHT - 12);
      return x.toFixed(1) + "," + y.toFixed(1);
    });
    line.setAttribute("points", points.join(" "));
    if (now) now.textContent = "· " + rates[rates.length - 1].toFixed(1) + " /s (max " + max.toFixed(1) + ")";
  }

  async function poll() {
    try {
      const r = await fetch("/api/v1/overview", { credentials: "same-origin", cache: "no-store" });
      if (r.status === 401) { window.location = "/login"; return; }
      if (!r.ok) return;
      const o = await r.json();
      for (const cell of cells) {
        const v = o.funnel[cell.dataset.funnel];
        if (typeof v === "number") cell.textContent = v.toLocaleString("en");
      }
      const t = Date.now();
      samples.push([t, o.funnel.active]);
      if (samples.length >= 2) {
        const [t0, a0] = samples[samples.length - 2];
        rates.push(Math.max(0, (o.funnel.active - a0) / Math.max(0.001, (t - t0) / 1000)));
        if (rates.length > KEEP) rates.shift();
        if (samples.length > KEEP) samples.shift();
      }
      draw();
    } catch (e) {
      // The server is restarting: the next poll tries again.
    }
  }
  poll();
  setInterval(poll, 2000);
})();
