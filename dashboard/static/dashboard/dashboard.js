// The live flash-sale dashboard: one GET of `data` every 2.5 s (only the seconds after the last one
// it has), charts drawn by uPlot (served from our static files), operator buttons POSTing to `control`.
(() => {
  "use strict";
  const root = document.getElementById("dashboard");
  const DATA_URL = root.dataset.url, CONTROL_URL = root.dataset.controlUrl;
  const CSRF = root.querySelector("input[name=csrfmiddlewaretoken]").value;
  const EVERY_MS = 2500, WINDOW = 300;
  const $ = (id) => document.getElementById(id);
  let since = null, canChange = root.dataset.canChange === "1";
  const series = { t: [], orders: [], payments: [], refusals: [], errors5xx: [],
    checkoutP50: [], checkoutP95: [], queueP95: [], paymentP50: [], paymentP95: [] };

  const fmt = (v, digits = 1) => (v === null || v === undefined) ? "-" : Number(v).toFixed(digits);
  const secs = (v) => (v === null || v === undefined) ? "-" : (v < 60 ? fmt(v) + " s" : fmt(v / 60) + " min");
  const pair = (l) => l && l.count ? fmt(l.p50) + " / " + fmt(l.p95) : "-";

  function chart(el, title, names, colors, points) {
    const width = Math.min(640, Math.max(320, el.parentElement.clientWidth || 600));
    return new uPlot({
      width, height: 220, title,
      scales: { x: { time: true } },
      series: [{}].concat(names.map((n, i) => ({ label: n, stroke: colors[i], width: 1.5, spanGaps: true, points: { show: points } }))),
      axes: [{}, { size: 50 }],
    }, [[]].concat(names.map(() => [])), el);
  }
  const rates = chart($("chart-rates"), "", ["orders", "payments", "refusals", "5xx"],
                      ["#1f77b4", "#2ca02c", "#ff7f0e", "#d62728"], false);
  const latency = chart($("chart-latency"), "", ["checkout p50", "checkout p95", "queue p95", "payment p50", "payment p95"],
                        ["#9ecae1", "#1f77b4", "#9467bd", "#a1d99b", "#2ca02c"], true);

  function merge(got) {
    if (!got) return;
    for (const key of Object.keys(series)) series[key].push(...(got[key] || []));
    const extra = series.t.length - WINDOW;
    if (extra > 0) for (const key of Object.keys(series)) series[key].splice(0, extra);
    rates.setData([series.t, series.orders, series.payments, series.refusals, series.errors5xx]);
    latency.setData([series.t, series.checkoutP50, series.checkoutP95, series.queueP95, series.paymentP50, series.paymentP95]);
  }

  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function button(product) {
    const b = document.createElement("button");
    b.type = "button"; b.dataset.product = product;
    b.addEventListener("click", () => control(product, b.dataset.action));  // the action it shows now
    return b;
  }

  function setButton(b, action, label) {
    if (b.dataset.action !== action) { b.dataset.action = action; b.textContent = label; }
  }

  const COLUMNS = ["name", "remaining", "reserved", "sold", "flag", "paused", "depth", "oldest", "served", "ops"];

  // Rows are updated in place (never rebuilt), so a button is not replaced under the operator's click.
  function showProducts(products) {
    const body = $("products").querySelector("tbody");
    const seen = new Set();
    for (const p of products) {
      seen.add(String(p.id));
      let tr = body.querySelector('tr[data-product="' + p.id + '"]');
      if (!tr) {
        tr = document.createElement("tr");
        tr.dataset.product = p.id;
        for (const name of COLUMNS) { const td = document.createElement("td"); td.className = name; tr.append(td); }
        body.append(tr);
      }
      const set = (name, text, bad) => {
        const td = tr.querySelector("td." + name);
        if (td.textContent !== String(text)) td.textContent = text;
        td.classList.toggle("bad", Boolean(bad));
      };
      set("name", "#" + p.id + " " + p.name);
      set("remaining", p.remaining, p.remaining <= 0);
      set("reserved", p.reserved); set("sold", p.sold);
      set("flag", p.soldOutFlag ? p.soldOutFlag : "-", p.soldOutFlag);
      set("paused", p.paused ? "paused" : "running", p.paused);
      set("depth", p.queueDepth); set("oldest", secs(p.oldestQueuedSeconds));
      set("served", p.served + " / " + p.lastPosition);
      const ops = tr.querySelector("td.ops");
      if (!canChange) { ops.textContent = "view only"; continue; }
      if (!ops.querySelector("button")) ops.replaceChildren(button(p.id), button(p.id));
      const [pause, flag] = ops.querySelectorAll("button");
      setButton(pause, p.paused ? "resume" : "pause", p.paused ? "Resume" : "Pause");
      setButton(flag, p.soldOutFlag === "operator" ? "reopen" : "close", p.soldOutFlag === "operator" ? "Clear sold out" : "Mark sold out");
    }
    for (const tr of body.querySelectorAll("tr")) if (!seen.has(tr.dataset.product)) tr.remove();
  }

  function showRows(tableId, rows) {
    $(tableId).querySelector("tbody").replaceChildren(...rows.map((cells) => {
      const tr = document.createElement("tr");
      tr.append(...cells.map(([text, cls]) => cell(text, cls)));
      return tr;
    }));
  }

  function show(data) {
    canChange = data.canChange;
    showProducts(data.products);
    showRows("partitions", data.partitions.map((p) => [[p.partition], [p.offset], [secs(p.lagSeconds)], [secs(p.handledAgoSeconds) + " ago"]]));
    const m = data.rates.lastMinute;
    if (m) {
      $("tile-orders").textContent = fmt(m.ordersPerSecond, 2);
      $("tile-payments").textContent = fmt(m.paymentsPerSecond, 2);
      $("tile-refusals").textContent = fmt(m.refusalsPerSecond, 2);
      $("tile-5xx").textContent = m.errors5xx;
      $("tile-5xx").className = "value" + (m.errors5xx ? " bad" : "");
      $("tile-checkout").textContent = pair(m.latencyMs.checkout);
      $("tile-queue").textContent = pair(m.latencyMs.queue);
      $("tile-payment").textContent = pair(m.latencyMs.payment);
      showRows("refusal-codes", Object.entries(m.refusalsByCode).map(([code, n]) => [[code], [n]]));
    }
    if (data.rates.series) { merge(data.rates.series); since = data.rates.until; }
    const pipe = data.pipeline;
    $("relay-lag").textContent = pipe.relayPendingSeconds === null ? "no relay here (Debezium?)" : secs(pipe.relayPendingSeconds);
    $("outbox-lag").textContent = secs(pipe.outboxUnappliedSeconds);
    $("dead-letters").textContent = pipe.deadLetters;
    const audit = data.audit;
    if (audit) {
      $("audit-state").textContent = audit.ok ? "all invariants hold" : "INVARIANTS BROKEN";
      $("audit-state").className = audit.ok ? "good" : "bad";
      $("audit-age").textContent = audit.ageSeconds === null ? "age unknown" : "checked " + secs(audit.ageSeconds) + " ago" +
        (audit.seconds !== null && audit.seconds !== undefined ? " (took " + fmt(audit.seconds, 2) + " s)" : "");
      showRows("audit-checks", Object.entries(audit.checks).map(([name, n]) => [[name], [n ? n + " breach(es)" : "ok", n ? "bad" : "good"]]));
    } else {
      $("audit-state").textContent = "no audit result yet";
    }
    $("dash-updated").textContent = new Date(data.now * 1000).toLocaleTimeString();
    $("dash-status").textContent = "live"; $("dash-status").dataset.state = "live";
  }

  async function refresh() {
    try {
      const res = await fetch(DATA_URL + (since !== null ? "?since=" + since : ""), { credentials: "same-origin" });
      if (!res.ok) throw new Error("HTTP " + res.status);
      show(await res.json());
    } catch (err) {
      $("dash-status").textContent = "stale: " + err.message; $("dash-status").dataset.state = "stale";
    } finally {
      setTimeout(refresh, EVERY_MS);
    }
  }

  async function control(product, action) {
    const message = $("control-message");
    for (const b of document.querySelectorAll("#products button")) b.disabled = true;
    try {
      const res = await fetch(CONTROL_URL, {
        method: "POST", credentials: "same-origin",
        headers: { "X-CSRFToken": CSRF, "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ productId: product, action }),
      });
      const body = await res.json().catch(() => ({ ok: false, message: "HTTP " + res.status }));
      message.textContent = body.message; message.className = "control-message " + (body.ok ? "good" : "bad");
      message.dataset.ok = body.ok ? "1" : "0";
    } catch (err) {
      message.textContent = "Request failed: " + err.message; message.className = "control-message bad";
      message.dataset.ok = "0";
    }
    try {
      const res = await fetch(DATA_URL + (since !== null ? "?since=" + since : ""), { credentials: "same-origin" });
      if (res.ok) {
        const data = await res.json();
        data.rates.series = null;  // the periodic refresh adds the new seconds to the charts
        show(data);
      }
    } finally {
      for (const b of document.querySelectorAll("#products button")) b.disabled = false;
    }
  }

  refresh();
})();
