// Cache stampede, modelled on the old service's scenario (incident 1): public catalog reads that
// are all cache hits once warm. Mix per iteration: 30 % popular, 25 % daily ranking, 20 % category
// list, 15 % product detail, 10 % cursor list; sleep 0-50 ms. A small share of /healthz requests
// (HEALTHZ_SHARE, default 5 %) runs in the same run as the yardstick: each endpoint's latency is
// compared with the latency of a view that does nothing, under the same load.
//
//   .venv/bin/k6 run -e VUS=100 -e DURATION=30s k6/cache-stampede.js
//   .venv/bin/k6 run -e VUS=400 -e DURATION=30s k6/cache-stampede.js
//   .venv/bin/k6 run -e VUS=100 -e DURATION=30s -e HEALTHZ_SHARE=1 k6/cache-stampede.js   # /healthz only
//
// BASE_URL defaults to http://127.0.0.1:8000 (products 1..100 and categories 1..10 of seed_demo).
// The summary goes to k6/results/cache-stampede-<VUS>.json (…-healthz-<VUS>.json for a healthz-only run).
// Every answer must be 200: anything else counts in http_req_failed and stampede_errors (threshold 0).

import http from 'k6/http';
import { check, sleep } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import { ENDPOINTS, stampedeReport, stampedeText } from './lib/h3-stampede-summary.js';

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8000';
const VUS = parseInt(__ENV.VUS || '100', 10);
const DURATION = __ENV.DURATION || '30s';
const HEALTHZ_SHARE = parseFloat(__ENV.HEALTHZ_SHARE || '0.05');
const RESULTS_DIR = __ENV.RESULTS_DIR || 'k6/results';
const PRODUCTS = parseInt(__ENV.PRODUCTS || '100', 10);
const CATEGORIES = parseInt(__ENV.CATEGORIES || '10', 10);

const trends = Object.fromEntries(ENDPOINTS.map((e) => [e, new Trend(`t_${e}`, true)]));
const errors = new Counter('stampede_errors');

export const options = {
  scenarios: { stampede: { executor: 'constant-vus', vus: VUS, duration: DURATION } },
  thresholds: { http_req_failed: ['rate==0'], stampede_errors: ['count==0'] },
  summaryTrendStats: ['count', 'avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

http.setResponseCallback(http.expectedStatuses(200));

const SUCCESS = /^\{"success": ?true/;

const randInt = (low, high) => low + Math.floor(Math.random() * (high - low + 1));

// [endpoint, cumulative share of the catalog mix, url builder]
const MIX = [
  ['popular', 0.30, () => `/api/v1/products/popular?limit=10`],
  ['ranking_daily', 0.55, () => `/api/v1/products/ranking/daily?limit=10`],
  ['category_list', 0.75, () => `/api/v1/products?categoryId=${randInt(1, CATEGORIES)}&size=10`],
  ['detail', 0.90, () => `/api/v1/products/${randInt(1, PRODUCTS)}`],
  ['cursor_list', 1.00, () => `/api/v1/products?lastId=${randInt(0, PRODUCTS - 20)}&size=20`],
];

function pick() {
  if (Math.random() < HEALTHZ_SHARE) return ['healthz', '/healthz'];
  const roll = Math.random();
  const [name, , url] = MIX.find(([, upTo]) => roll < upTo) || MIX[MIX.length - 1];
  return [name, url()];
}

export default function () {
  const [name, path] = pick();
  const res = http.get(`${BASE_URL}${path}`, { tags: { name } });
  trends[name].add(res.timings.duration);
  const ok = check(res, {
    'status 200': (r) => r.status === 200,
    'success envelope': (r) => r.status === 200 && SUCCESS.test(r.body),
  });
  if (!ok) errors.add(1, { name });
  sleep(Math.random() * 0.05);
}

export function handleSummary(data) {
  const kind = HEALTHZ_SHARE >= 1 ? 'cache-stampede-healthz' : 'cache-stampede';
  const report = stampedeReport(data, { vus: VUS, duration: DURATION, healthzShare: HEALTHZ_SHARE });
  return {
    [`${RESULTS_DIR}/${kind}-${VUS}.json`]: JSON.stringify(report, null, 2),
    stdout: stampedeText(report),
  };
}
