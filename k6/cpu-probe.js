// One endpoint from VUS virtual users, ITERATIONS requests in all: the concurrent half of
// bench/cpu_per_request.py (which reads the CPU the run cost every process). Not a scenario of its own.
//   ENDPOINT=product|popular|points|cart_view|cart_add|coupon_issue|checkout_pay|healthz
import http from 'k6/http';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';
import { data, loadTokens } from './lib/common.js';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:8000';
const ENDPOINT = __ENV.ENDPOINT || 'product';
const PRODUCT_ID = Number(__ENV.PRODUCT_ID || 42);
const COUPON_ID = Number(__ENV.COUPON_ID || 4);
const SOLD_OUT_COUPON_ID = Number(__ENV.SOLD_OUT_COUPON_ID || 10);
const tokens = loadTokens();
const userIds = Object.keys(tokens).map(Number).sort((a, b) => a - b);

export const options = {
  scenarios: {
    probe: {
      executor: 'shared-iterations',
      vus: Number(__ENV.VUS || 50),
      iterations: Number(__ENV.ITERATIONS || 500),
      maxDuration: '5m',
    },
  },
  summaryTrendStats: ['med', 'p(95)'],
};

// k6 aggregates metrics, not plain objects: one counter per status we expect, the rest in `other`
const KNOWN = [200, 201, 202, 400, 401, 403, 404, 409, 422, 429, 503];
const counters = Object.fromEntries(KNOWN.map((s) => [s, new Counter(`probe_status_${s}`)]));
const other = new Counter('probe_status_other');

function call(method, path, userId, body) {
  const headers = { 'Content-Type': 'application/json' };
  if (userId) headers.Authorization = `Bearer ${tokens[String(userId)]}`;
  const res = http.request(method, `${BASE}${path}`, body ? JSON.stringify(body) : null, { headers, tags: { name: ENDPOINT } });
  return res;
}

export default function () {
  // every iteration a different user, in order, like the sequential half
  const user = userIds[(exec.scenario.iterationInTest) % userIds.length];
  let res;
  switch (ENDPOINT) {
    case 'healthz': res = call('GET', '/healthz'); break;
    case 'product': res = call('GET', `/api/v1/products/${PRODUCT_ID}`); break;
    case 'popular': res = call('GET', '/api/v1/products/popular?limit=10'); break;
    case 'points': res = call('GET', `/api/v1/points/${user}`, user); break;
    case 'cart_view': res = call('GET', `/api/v1/cart?userId=${user}`, user); break;
    case 'cart_add': res = call('POST', `/api/v1/cart/items?userId=${user}`, user, { productId: PRODUCT_ID, quantity: 1 }); break;
    case 'coupon_issue': res = call('POST', `/api/v1/coupons/issue?userId=${user}`, user, { couponId: COUPON_ID }); break;
    case 'coupon_sold_out': res = call('POST', `/api/v1/coupons/issue?userId=${user}`, user, { couponId: SOLD_OUT_COUPON_ID }); break;
    case 'checkout_pay': {
      res = call('POST', '/api/v1/checkout/initiate', user, { userId: user, directOrderItems: [{ productId: PRODUCT_ID, quantity: 1 }] });
      const order = res.status === 200 ? data(res) : null;
      if (order) {
        res = call('POST', '/api/v1/payments/process', user, { orderId: order.orderId, userId: user, amount: order.finalAmount, paymentMethod: 'BALANCE' });
      }
      break;
    }
    default: throw new Error(`unknown ENDPOINT ${ENDPOINT}`);
  }
  (counters[res.status] || other).add(1);
}

export function handleSummary(summary) {
  const out = { statuses: {} };
  for (const [name, metric] of Object.entries(summary.metrics)) {
    const m = name.match(/^probe_status_(\d+|other)$/);
    if (m) out.statuses[m[1]] = metric.values.count;
  }
  return { [__ENV.OUT || '/dev/stdout']: JSON.stringify(out) };
}
