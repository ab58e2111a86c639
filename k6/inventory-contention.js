// Inventory contention, modelled on the old service's test: checkouts where 70 % hit the
// 5 flash-sale products, each followed by a payment after 0.1-0.3 s. Two levels run back to back:
// 100 VUs, then 300 VUs, so p95 at each level comes from one run.
//   k6 run -e BASE_URL=http://127.0.0.1:8000 k6/inventory-contention.js
// Before the run: `make tokens` and `manage.py restock --products 1-5 --available 5000` (so the
// flash rows stay contended instead of selling out in the first second).
import { check, sleep } from 'k6';
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';
import { data, errorCode, isServerError, loadTokens, post, randInt, userFor } from './lib/common.js';

const tokens = loadTokens();
const HOLD = __ENV.HOLD || '40s';

export const options = {
  scenarios: {
    vus100: { executor: 'ramping-vus', startVUs: 0, stages: [{ duration: '15s', target: 100 }, { duration: HOLD, target: 100 }, { duration: '5s', target: 0 }] },
    vus300: { executor: 'ramping-vus', startVUs: 0, startTime: '65s', stages: [{ duration: '15s', target: 300 }, { duration: HOLD, target: 300 }, { duration: '5s', target: 0 }] },
  },
  thresholds: { server_errors: ['count==0'] },
  summaryTrendStats: ['med', 'p(95)', 'p(99)', 'max'],
};

const trends = {
  vus100: { checkout: new Trend('checkout_100', true), payment: new Trend('payment_100', true) },
  vus300: { checkout: new Trend('checkout_300', true), payment: new Trend('payment_300', true) },
};
const serverErrors = new Counter('server_errors');
const paidOrders = new Counter('paid_orders');
const outcomes = new Counter('checkout_refusals');

export default function () {
  const level = trends[exec.scenario.name];
  const { userId, token } = userFor(tokens, __VU);
  const productId = Math.random() < 0.7 ? randInt(1, 5) : randInt(6, 100);
  const res = post('/api/v1/checkout/initiate', { userId, directOrderItems: [{ productId, quantity: 1 }] }, token, { name: 'checkout' });
  level.checkout.add(res.timings.duration);
  if (isServerError(res)) serverErrors.add(1, { endpoint: 'checkout', status: String(res.status) });
  check(res, { 'checkout answered 200 or 409': (r) => r.status === 200 || r.status === 409 });
  if (res.status !== 200) {
    outcomes.add(1, { code: errorCode(res) || String(res.status) });
    sleep(0.1);
    return;
  }
  const order = data(res);
  sleep(0.1 + Math.random() * 0.2);
  const pay = post('/api/v1/payments/process', { orderId: order.orderId, userId, amount: order.finalAmount, paymentMethod: 'BALANCE' }, token, { name: 'payment' });
  level.payment.add(pay.timings.duration);
  if (isServerError(pay)) serverErrors.add(1, { endpoint: 'payment', status: String(pay.status) });
  if (pay.status === 200) paidOrders.add(1);
  check(pay, { 'payment answered 200 or 409': (r) => r.status === 200 || r.status === 409 });
}

export function handleSummary(summary) {
  const m = summary.metrics;
  const pick = (name) => (m[name] ? { med: m[name].values.med, p95: m[name].values['p(95)'], count: m[name].values.count } : null);
  const seconds = summary.state.testRunDurationMs / 1000;
  const report = {
    scenario: 'inventory-contention',
    seconds,
    requests: m.http_reqs.values.count,
    serverErrors: m.server_errors ? m.server_errors.values.count : 0,
    paidOrders: m.paid_orders ? m.paid_orders.values.count : 0,
    paidOrdersPerSecond: m.paid_orders ? m.paid_orders.values.count / seconds : 0,
    checkout100: pick('checkout_100'),
    payment100: pick('payment_100'),
    checkout300: pick('checkout_300'),
    payment300: pick('payment_300'),
  };
  const out = __ENV.OUT || 'k6/results/inventory-contention.json';
  return { [out]: JSON.stringify(report, null, 2), stdout: JSON.stringify(report, null, 2) + '\n' };
}
