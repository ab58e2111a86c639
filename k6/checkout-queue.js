// Flash-sale queued checkout, modelled on the old service's queued-checkout test: VUs ramp to 300,
// each VU is its own user (a token from tokens.json), buys one unit of a random flash product 1..5
// through POST /checkout/queue, then polls GET /checkout/queue/{requestId} until COMPLETED/FAILED.
//
//   .venv/bin/python manage.py issue_tokens --users 1-1000 --out k6/results/tokens.json
//   .venv/bin/k6 run -e BASE_URL=http://127.0.0.1:18600 k6/checkout-queue.js            # ramping to 300
//   .venv/bin/k6 run -e VUS=100 -e DURATION=30s k6/checkout-queue.js                     # constant load
//
// Metrics: queue_enqueue_ms (POST latency), queue_result_ms (enqueue start to the poll that saw the
// answer; resolution POLL_MS), queue_poll_ms; counters per outcome. Expected answers: 202, 200 and 409
// (SOLD_OUT refused at admission, ALREADY_QUEUED); anything else is in http_req_failed and 5xx in
// queue_5xx (threshold: zero). Summary JSON: k6/results/checkout-queue-<VUS>.json.

import http from 'k6/http';
import { check, sleep } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import { checkoutQueueText } from './lib/checkout-queue-summary.js';

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8000';
const VUS = parseInt(__ENV.VUS || '300', 10);
const DURATION = __ENV.DURATION || '';
const POLL_MS = parseInt(__ENV.POLL_MS || '200', 10);
const RESULT_TIMEOUT_S = parseInt(__ENV.RESULT_TIMEOUT_S || '30', 10);
const RESULTS_DIR = __ENV.RESULTS_DIR || 'k6/results';
const PRODUCTS = (__ENV.PRODUCTS || '1,2,3,4,5').split(',').map(Number);

const tokens = JSON.parse(open(__ENV.TOKENS || './results/tokens.json')); // {userId: access token}
const userIds = Object.keys(tokens).map(Number).sort((a, b) => a - b);

const enqueueMs = new Trend('queue_enqueue_ms', true);
const resultMs = new Trend('queue_result_ms', true);
const pollMs = new Trend('queue_poll_ms', true);
const enqueued = new Counter('queue_enqueued');
const completed = new Counter('queue_completed');
const failed = new Counter('queue_failed');
const refusedSoldOut = new Counter('queue_refused_sold_out');
const alreadyQueued = new Counter('queue_already_queued');
const timedOut = new Counter('queue_result_timeout');
const other4xx = new Counter('queue_other_4xx');
const serverErrors = new Counter('queue_5xx');

const rampTo300 = [
  { duration: '20s', target: Math.ceil(VUS / 5) },
  { duration: '30s', target: Math.ceil(VUS / 2) },
  { duration: '30s', target: VUS },
  { duration: '60s', target: VUS },
  { duration: '20s', target: 0 },
];

export const options = {
  scenarios: {
    queue: DURATION
      ? { executor: 'constant-vus', vus: VUS, duration: DURATION }
      : { executor: 'ramping-vus', startVUs: 0, stages: rampTo300, gracefulRampDown: '30s' },
  },
  thresholds: {
    queue_5xx: ['count==0'],
    http_req_failed: ['rate==0'],
    queue_result_timeout: ['count==0'],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

http.setResponseCallback(http.expectedStatuses(200, 202, 409));

export function setup() {
  if (userIds.length < VUS) throw new Error(`need a token per VU: ${userIds.length} tokens for ${VUS} VUs`);
}

function headers(token) {
  return { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` };
}

function waitForResult(requestId, token, startedAt) {
  const deadline = startedAt + RESULT_TIMEOUT_S * 1000;
  while (Date.now() < deadline) {
    const res = http.get(`${BASE_URL}/api/v1/checkout/queue/${requestId}`, {
      headers: headers(token), tags: { name: 'GET /checkout/queue/{id}' },
    });
    pollMs.add(res.timings.duration);
    if (res.status >= 500 || res.status === 0) serverErrors.add(1);
    if (res.status === 200) {
      const status = res.json('data.status');
      if (status === 'COMPLETED' || status === 'FAILED') {
        resultMs.add(Date.now() - startedAt);
        (status === 'COMPLETED' ? completed : failed).add(1);
        return;
      }
    }
    sleep(POLL_MS / 1000);
  }
  timedOut.add(1);
}

export default function () {
  const userId = userIds[(__VU - 1) % userIds.length]; // one distinct user per VU
  const token = tokens[userId];
  const productId = PRODUCTS[Math.floor(Math.random() * PRODUCTS.length)];
  const startedAt = Date.now();
  const res = http.post(`${BASE_URL}/api/v1/checkout/queue`, JSON.stringify({ userId, productId, quantity: 1 }), {
    headers: headers(token), tags: { name: 'POST /checkout/queue' },
  });
  enqueueMs.add(res.timings.duration);
  check(res, { 'answered 202 or 409': (r) => r.status === 202 || r.status === 409 });
  if (res.status === 202) {
    enqueued.add(1);
    waitForResult(res.json('data.requestId'), token, startedAt);
  } else if (res.status === 409) {
    const code = res.json('errorCode');
    if (code === 'SOLD_OUT') refusedSoldOut.add(1);
    else if (code === 'ALREADY_QUEUED') alreadyQueued.add(1);
    else other4xx.add(1);
  } else if (res.status >= 500 || res.status === 0) serverErrors.add(1);
  else other4xx.add(1);
  // under the enqueue throttle (120/min per user)
  sleep(0.6 + 0.4 * Math.random());
}

export function handleSummary(data) {
  const title = `checkout queue, ${VUS} VUs${DURATION ? ` for ${DURATION}` : ' (ramping)'}, products ${PRODUCTS.join(',')}`;
  return {
    [`${RESULTS_DIR}/checkout-queue-${VUS}.json`]: JSON.stringify(data, null, 2),
    stdout: checkoutQueueText(data, title),
  };
}
