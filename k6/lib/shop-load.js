// Storefront actions and per-endpoint metrics shared by baseline.js, load-test.js, payment-burst.js and
// event-simulation.js. Every request carries a `name` tag (the endpoint key below), so the time series
// written with `--out csv=` can be split per endpoint by bench/report.py.
//
// Expected answers: 2xx and 4xx (400/409 are business refusals: sold out, already issued, no stock),
// and 503 OVERLOADED: the server answered at once that it could not start the request in time (load
// shedding, with Retry-After); those are counted in `shed`, apart from failures.
// Failures: other 5xx and status 0 (timeouts, refused connections); they count in `server_errors` and
// `timeouts` (and, but for 503, in `http_req_failed`).
import http from 'k6/http';
import { sleep } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import { baseUrl, data, errorCode, randInt } from './common.js';

http.setResponseCallback(http.expectedStatuses({ min: 200, max: 499 }, 503));

export const REQUEST_TIMEOUT = __ENV.REQUEST_TIMEOUT || '15s'; // the old suite's client timeout
export const FLASH_PRODUCTS = [1, 5];
export const CATALOG_PRODUCTS = [6, 100];
export const EVENT_COUPONS = [1, 2, 3, 9, 10];
const CHARGE_AMOUNT = 1_000_000;

// One Trend per endpoint (ms); `flow` is checkout + payment as the client sees it (incl. think time 0).
export const ENDPOINTS = [
  'product', 'products_page', 'popular', 'ranking', 'cart_view', 'cart_add', 'coupon_issue',
  'checkout', 'payment', 'points', 'points_charge',
];
export const trends = Object.fromEntries(ENDPOINTS.map((name) => [name, new Trend(`t_${name}`, true)]));
export const flowTrend = new Trend('t_flow', true);

export const serverErrors = new Counter('server_errors');
export const timeouts = new Counter('timeouts');
export const shed = new Counter('shed');
export const paidOrders = new Counter('paid_orders');
export const couponsIssued = new Counter('coupons_issued');
export const chargeRetries = new Counter('charge_retries');
export const paymentsRefused = new Counter('payments_refused');
const STATUS_CODES = [200, 201, 202, 400, 401, 403, 404, 405, 409, 415, 422, 429, 500, 502, 503, 504, 0];
const statusCounters = Object.fromEntries(STATUS_CODES.map((code) => [code, new Counter(`status_${code}`)]));
const otherStatus = new Counter('status_other');

function record(name, res) {
  trends[name].add(res.timings.duration);
  (statusCounters[res.status] || otherStatus).add(1);
  if (res.status === 0) timeouts.add(1);
  else if (res.status === 503 && errorCode(res) === 'OVERLOADED') shed.add(1);
  else if (res.status >= 500) serverErrors.add(1);
  return res;
}

function params(name, token) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  return { headers, tags: { name }, timeout: REQUEST_TIMEOUT };
}

export function getJson(name, path, token) {
  return record(name, http.get(`${baseUrl()}${path}`, params(name, token)));
}

export function postJson(name, path, body, token) {
  return record(name, http.post(`${baseUrl()}${path}`, JSON.stringify(body), params(name, token)));
}

export function pick(list) {
  return list[Math.floor(Math.random() * list.length)];
}

// A product id: `flashShare` of the time one of the flash products 1..5, else the ordinary catalogue.
export function productId(flashShare) {
  return Math.random() < flashShare ? randInt(...FLASH_PRODUCTS) : randInt(...CATALOG_PRODUCTS);
}

export const productDetail = (flashShare) => getJson('product', `/api/v1/products/${productId(flashShare)}`);
export const productsPage = () => {
  const lastId = Math.random() < 0.5 ? '' : `&lastId=${randInt(2, 100)}`;
  return getJson('products_page', `/api/v1/products?size=20${lastId}`);
};
export const popular = () => getJson('popular', '/api/v1/products/popular?limit=10');
export const dailyRanking = () => getJson('ranking', '/api/v1/products/ranking/daily?limit=10');
export const cartView = (u) => getJson('cart_view', `/api/v1/cart?userId=${u.userId}`, u.token);
export const cartAdd = (u) =>
  postJson('cart_add', `/api/v1/cart/items?userId=${u.userId}`, { productId: productId(0), quantity: randInt(1, 3) }, u.token);
export const points = (u) => getJson('points', `/api/v1/points/${u.userId}`, u.token);
export const charge = (u, amount = CHARGE_AMOUNT) =>
  postJson('points_charge', `/api/v1/points/${u.userId}/charge`, { amount, description: 'k6 top-up' }, u.token);

export function couponIssue(u, couponIds = EVENT_COUPONS) {
  const res = postJson('coupon_issue', `/api/v1/coupons/issue?userId=${u.userId}`, { couponId: pick(couponIds) }, u.token);
  if (res.status === 200) couponsIssued.add(1);
  return res;
}

// Runs `attempt()`; on 409 INSUFFICIENT_BALANCE tops the wallet up and tries exactly once more.
function withTopUp(u, attempt) {
  const res = attempt();
  if (res.status !== 409 || errorCode(res) !== 'INSUFFICIENT_BALANCE') return res;
  chargeRetries.add(1);
  charge(u);
  return attempt();
}

// Checkout of one product, then payment of the order (the old suite's flow). Returns true if paid.
export function checkoutAndPay(u, flashShare, thinkSeconds = 0) {
  const started = Date.now();
  const item = { productId: productId(flashShare), quantity: 1 };
  const res = withTopUp(u, () =>
    postJson('checkout', '/api/v1/checkout/initiate', { userId: u.userId, directOrderItems: [item] }, u.token));
  if (res.status !== 200) return false;
  const order = data(res);
  if (thinkSeconds > 0) sleep(thinkSeconds);
  const body = { orderId: order.orderId, userId: u.userId, amount: order.finalAmount, paymentMethod: 'BALANCE' };
  const pay = withTopUp(u, () => postJson('payment', '/api/v1/payments/process', body, u.token));
  flowTrend.add(Date.now() - started);
  if (pay.status === 200) {
    paidOrders.add(1);
    return true;
  }
  paymentsRefused.add(1, { code: errorCode(pay) || String(pay.status) });
  return false;
}

// Only checkout (the load test's "10 % checkout" leaves the order unpaid: it expires after the hold).
export function checkoutOnly(u, flashShare) {
  const item = { productId: productId(flashShare), quantity: 1 };
  return withTopUp(u, () =>
    postJson('checkout', '/api/v1/checkout/initiate', { userId: u.userId, directOrderItems: [item] }, u.token));
}

export function think(low, high) {
  sleep(low + Math.random() * (high - low));
}

// Picks a key of `mix` ({key: weight, ...}, weights summing to 100) at random.
export function choose(mix) {
  let r = Math.random() * 100;
  for (const [key, weight] of Object.entries(mix)) {
    r -= weight;
    if (r < 0) return key;
  }
  return Object.keys(mix)[0];
}
