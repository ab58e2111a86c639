// The flash-sale storefront demo (templates/demo/flash_sale.html): only public API calls and two
// server-sent-event streams, the public `flash-stock` one and the shopper's own.
(() => {
  "use strict";
  const API = "/api/v1";
  const cfg = window.FLASH_SALE;
  const $ = (id) => document.getElementById(id);
  const st = {
    access: null, userId: null, balance: null, source: null, lastEventId: "", streamOpen: false,
    request: null, order: null, results: new Map(), served: new Map(), soldOut: new Set(), pollTimer: null, ticker: null,
  };

  const MESSAGES = {
    SOLD_OUT: "Sold out: every unit has been taken. Better luck next sale!",
    INSUFFICIENT_STOCK: "Not enough units are left for that quantity.",
    ALREADY_QUEUED: "You are already in line for this product.",
    QUEUE_UNAVAILABLE: "The line is busy right now; please try again in a moment.",
    RATE_LIMITED: "Too many tries; please wait a moment.",
    ORDER_NOT_PAYABLE: "This order can no longer be paid.",
    ORDER_EXPIRED: "Your hold expired: the units went back on sale.",
  };
  const points = (n) => Number(n).toLocaleString("en-US") + " points";

  function explain(code, data) {
    if (code === "INSUFFICIENT_BALANCE") {
      const required = data && data.required, balance = data && data.balance !== undefined ? data.balance : st.balance;
      return "Not enough points: this costs " + (required ? points(required) : "more than you have") +
        (balance !== null && balance !== undefined ? " and you have " + points(balance) : "") + ". Top up your points and try again.";
    }
    return MESSAGES[code] || ("Refused: " + code);
  }

  function key() {
    return window.crypto && crypto.randomUUID ? crypto.randomUUID() : Date.now() + "-" + Math.random().toString(16).slice(2);
  }

  async function call(method, path, body, idempotencyKey) {
    const headers = { "Content-Type": "application/json" };
    if (st.access) headers.Authorization = "Bearer " + st.access;
    if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
    const res = await fetch(API + path, { method, headers, body: body ? JSON.stringify(body) : undefined });
    let json = null;
    try { json = await res.json(); } catch (e) { /* empty body */ }
    return { status: res.status, json };
  }

  function setState(id, state, text) { $(id).dataset.state = state; $(id).textContent = text; }

  function say(text, ok, via) {
    const result = $("result");
    result.textContent = text;
    result.className = ok === null ? "" : ok ? "ok" : "fail";
    if (via) result.dataset.via = via;
  }

  // --- live stock (public stream) -----------------------------------------------------------------
  function openStock() {
    const source = new EventSource(cfg.stockUrl);
    source.addEventListener("stream-open", () => setState("stock-state", "open", "connected"));
    source.addEventListener("flash-stock", (ev) => showStock(JSON.parse(ev.data)));
    source.onerror = () => setState("stock-state", "reconnecting", "reconnecting");  // EventSource retries by itself
  }

  function showStock(payload) {
    for (const p of payload.products) {
      const li = document.querySelector('.product[data-product="' + p.productId + '"]');
      if (!li) continue;
      const soldOut = p.available <= 0 || p.soldOutFlag !== null;
      li.querySelector(".available").textContent = Math.max(p.available, 0);
      li.classList.toggle("sold-out", soldOut);
      li.querySelector(".badge").classList.toggle("off", !soldOut);
      if (soldOut) st.soldOut.add(p.productId); else st.soldOut.delete(p.productId);
      st.served.set(p.productId, p.served);
    }
    showAhead();
    refreshButtons();
  }

  function showAhead() {
    const r = st.request;
    if (!r || r.status !== "QUEUED") return;
    const ahead = Math.max(r.position - (st.served.get(r.productId) || 0) - 1, 0);
    $("ahead").textContent = ahead === 0 ? "you are next" : ahead + " ahead of you";
  }

  function refreshButtons() {
    const busy = st.request && (st.request.status === "sending" || st.request.status === "QUEUED");
    for (const b of document.querySelectorAll("button.buy")) {
      b.disabled = !st.access || !st.streamOpen || busy;  // sold out stays clickable: the answer explains it
    }
  }

  // --- the shopper's own stream --------------------------------------------------------------------
  async function connect() {
    const { status, json } = await call("POST", "/sse/token");
    if (status !== 200) { setState("sse-state", "closed", "token refused (" + status + ")"); return; }
    let url = json.data.subscribeUrl;
    if (st.lastEventId) url += "&lastEventId=" + encodeURIComponent(st.lastEventId);
    if (st.source) st.source.close();
    st.streamOpen = false;
    const source = st.source = new EventSource(url);
    source.addEventListener("stream-open", () => {
      st.streamOpen = true;
      setState("sse-state", "open", "connected");
      refreshButtons();
      resync();
    });
    const on = (type, fn) => source.addEventListener(type, (ev) => {
      if (ev.lastEventId) st.lastEventId = ev.lastEventId;
      fn(JSON.parse(ev.data));
    });
    on("checkout-queued", (d) => { if (st.request && st.request.id === d.requestId && st.request.status === "QUEUED") $("status").textContent = "QUEUED"; });
    on("checkout-completed", (d) => answered(d, "sse"));
    on("checkout-failed", (d) => answered(d, "sse"));
    on("order-completed", (d) => orderEvent(d.orderId, "CONFIRMED"));
    on("order-expired", (d) => orderEvent(d.orderId, "EXPIRED"));
    on("order-cancelled", (d) => orderEvent(d.orderId, "CANCELLED"));
    source.onerror = () => {
      st.streamOpen = false;
      setState("sse-state", "reconnecting", "reconnecting");
      refreshButtons();
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, 1000);  // e.g. the token expired
    };
  }

  async function resync() {  // after a reconnect: what happened while the stream was down
    const r = st.request;
    if (r && r.status === "QUEUED") {
      const { status, json } = await call("GET", "/checkout/queue/" + r.id);
      if (status === 200 && json.data.status !== "QUEUED") answered(json.data, "resync");
    }
    const o = st.order;
    if (o && (o.status === "PENDING_PAYMENT" || o.status === "PAID")) {
      const { status, json } = await call("GET", "/orders/" + o.id);
      if (status === 200 && json.data.status !== o.status) orderEvent(o.id, json.data.status);
    }
  }

  async function loadBalance() {
    const { status, json } = await call("GET", "/points/" + st.userId);
    if (status === 200) { st.balance = json.data.balance; $("balance").textContent = points(st.balance); }
  }

  // --- buying --------------------------------------------------------------------------------------
  async function buy(productId) {
    clearTimeout(st.pollTimer);
    st.request = { id: null, productId, position: null, status: "sending" };
    refreshButtons();
    $("queue-box").hidden = false;
    $("status").textContent = "sending"; $("position").textContent = "-"; $("ahead").textContent = "-"; $("wait").textContent = "";
    say("", null);
    const { status, json } = await call("POST", "/checkout/queue", { productId, quantity: 1 }, key());
    if (status !== 202) {
      const code = (json && json.errorCode) || ("HTTP " + status);
      st.request.status = code;
      $("status").textContent = code;
      say(explain(code, json && json.data), false, "api");
      refreshButtons();
      return;
    }
    Object.assign(st.request, { id: json.data.requestId, position: json.data.queuePosition, status: "QUEUED" });
    $("position").textContent = json.data.queuePosition;
    $("wait").textContent = "(about " + json.data.estimatedWaitSeconds + " s)";
    if (st.results.has(st.request.id)) { answered(st.results.get(st.request.id), "sse"); return; }  // the answer came first
    $("status").textContent = "QUEUED";
    showAhead();
    const id = st.request.id;
    st.pollTimer = setTimeout(() => poll(id), 10000);
  }

  async function poll(requestId) {  // only if no live answer came at all
    if (!st.request || st.request.id !== requestId || st.request.status !== "QUEUED") return;
    const { status, json } = await call("GET", "/checkout/queue/" + requestId);
    if (status === 200 && json.data.status !== "QUEUED") { answered(json.data, "poll"); return; }
    st.pollTimer = setTimeout(() => poll(requestId), 3000);
  }

  function answered(data, via) {
    st.results.set(data.requestId, data);
    const r = st.request;
    if (!r || r.id !== data.requestId || r.status !== "QUEUED") return;
    clearTimeout(st.pollTimer);
    r.status = data.status;
    $("status").textContent = data.status;
    $("wait").textContent = "";
    if (data.status === "COMPLETED") {
      $("ahead").textContent = "your turn came";
      showOrder({ id: data.orderId, number: data.orderNumber, amount: data.finalAmount, expiresAt: Date.parse(data.expiresAt), status: "PENDING_PAYMENT" });
      say("Reserved! Order " + data.orderNumber + ": pay " + points(data.finalAmount) + " before the hold ends.", true, via);
    } else {
      $("ahead").textContent = "-";
      const li = document.querySelector('.product[data-product="' + data.productId + '"]');
      const required = li ? Number(li.dataset.price) * data.quantity : null;
      say(explain(data.errorCode, { required }), false, via);
    }
    refreshButtons();
  }

  // --- the order -----------------------------------------------------------------------------------
  function showOrder(order) {
    order.payKey = key();
    st.order = order;
    $("order-box").hidden = false;
    $("order-number").textContent = "Order " + order.number;
    $("order-amount").textContent = Number(order.amount).toLocaleString("en-US");
    setOrderStatus(order.status);
    clearInterval(st.ticker);
    st.ticker = setInterval(tick, 1000);
    tick();
  }

  function tick() {
    const o = st.order;
    if (!o || o.status !== "PENDING_PAYMENT") { clearInterval(st.ticker); $("countdown").textContent = ""; return; }
    const left = Math.max(0, Math.round((o.expiresAt - Date.now()) / 1000));
    $("countdown").textContent = left > 0
      ? "· hold ends in " + Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0")
      : "· hold ended";
  }

  function setOrderStatus(status) {
    st.order.status = status;
    $("order-status").textContent = status;
    $("order-status").dataset.status = status;
    $("pay").disabled = status !== "PENDING_PAYMENT";
    tick();
  }

  function orderEvent(orderId, status) {
    const o = st.order;
    if (!o || o.id !== orderId || o.status === status || o.status === "CONFIRMED") return;
    setOrderStatus(status);
    if (status === "CONFIRMED") say("Payment confirmed: order " + o.number + " is yours.", true, "sse");
    else if (status === "EXPIRED") say(MESSAGES.ORDER_EXPIRED, false, "sse");
    else if (status === "CANCELLED") say("Order " + o.number + " was cancelled.", false, "sse");
  }

  async function pay() {
    const o = st.order;
    $("pay").disabled = true;
    const { status, json } = await call("POST", "/payments/process", { orderId: o.id, amount: o.amount }, o.payKey);
    if (status === 200) {
      if (o.status === "PENDING_PAYMENT") setOrderStatus("PAID");
      if (o.status === "PAID") say("Paid " + points(o.amount) + ". Waiting for the confirmation…", true, "api");
      loadBalance();
      return;
    }
    const code = (json && json.errorCode) || ("HTTP " + status);
    if (code === "INSUFFICIENT_BALANCE") await loadBalance();
    say(explain(code, json && json.data), false, "api");
    $("pay").disabled = o.status !== "PENDING_PAYMENT";
  }

  // --- wiring --------------------------------------------------------------------------------------
  $("signin").addEventListener("click", async () => {
    st.access = null;
    if (st.source) { st.source.close(); st.source = null; }
    st.streamOpen = false; st.request = null; st.order = null; st.lastEventId = "";
    $("queue-box").hidden = true; $("order-box").hidden = true; say("", null);
    setState("sse-state", "closed", "not connected");
    refreshButtons();
    const { status, json } = await call("POST", "/auth/token", { username: $("username").value, password: $("password").value });
    if (status !== 200) { $("signin-state").textContent = "sign-in failed (" + status + ")"; return; }
    st.access = json.data.access;
    const me = await call("GET", "/users/me");
    st.userId = me.json.data.id;
    $("signin-state").textContent = "signed in as " + me.json.data.username;
    $("account").hidden = false;
    await loadBalance();
    await connect();
  });
  for (const b of document.querySelectorAll("button.buy")) b.addEventListener("click", () => buy(Number(b.dataset.product)));
  $("pay").addEventListener("click", pay);
  for (const el of document.querySelectorAll("[data-points]")) el.textContent = points(el.dataset.points);
  openStock();
})();
