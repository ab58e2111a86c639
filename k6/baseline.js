// Baseline: each endpoint alone at 10 VUs, one after another (no think time), so every
// endpoint's latency is measured without the others' load. DURATION per endpoint (default 20s).
//   .venv/bin/k6 run -e BASE_URL=http://127.0.0.1:8000 -e TOKENS=$PWD/k6/results/tokens.json k6/baseline.js
// The summary goes to k6/results/baseline.json; checkouts are left unpaid except in `flow`.
import exec from 'k6/execution';
import { loadTokens, userFor } from './lib/common.js';
import { TREND_STATS, writeSummary } from './lib/report.js';
import {
  cartAdd, cartView, checkoutAndPay, checkoutOnly, couponIssue, dailyRanking, points, popular, productDetail,
  productsPage,
} from './lib/shop-load.js';

const tokens = loadTokens();
const VUS = parseInt(__ENV.VUS || '10', 10);
const SECONDS = parseInt((__ENV.DURATION || '20s').replace('s', ''), 10);

const ACTIONS = {
  products_page: () => productsPage(),
  product: () => productDetail(0.7),
  popular: () => popular(),
  ranking: () => dailyRanking(),
  cart_view: (u) => cartView(u),
  cart_add: (u) => cartAdd(u),
  points: (u) => points(u),
  coupon_issue: (u) => couponIssue(u),
  checkout: (u) => checkoutOnly(u, 0),
  flow: (u) => checkoutAndPay(u, 0),
};

// One constant-vus scenario per endpoint, started back to back (2 s gap).
export const options = {
  scenarios: Object.fromEntries(Object.keys(ACTIONS).map((name, index) => [name, {
    executor: 'constant-vus', vus: VUS, duration: `${SECONDS}s`, startTime: `${index * (SECONDS + 2)}s`,
    exec: 'run', gracefulStop: '5s',
  }])),
  thresholds: { server_errors: ['count==0'], timeouts: ['count==0'] },
  summaryTrendStats: TREND_STATS,
};

export function run() {
  ACTIONS[exec.scenario.name](userFor(tokens, __VU));
}

export function handleSummary(summary) {
  return writeSummary('baseline', 'baseline', summary, { vus: VUS });
}
