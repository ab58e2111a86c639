// The Black Friday simulation, modelled on the old service's test:
// 50 VUs browse for 30 s, the event ramps 50 -> 300 (10 s) -> 500 (30 s) -> 500 (1 min) -> 300 (30 s),
// then traffic falls back to browsing 300 -> 100 -> 0.
//   event traffic: 20 % coupon issue (coupons 1,2,3,9,10), 20 % product detail (70 % flash products 1..5),
//                  15 % cart add, 20 % checkout then payment (half on flash products), 15 % popular,
//                  10 % points balance; think time THINK_MIN..THINK_MAX s (default 0.1-0.5)
//   browsing:      60 % product detail, 20 % popular, 20 % cart view; think time 1-3 s
// Each VU is its own user (one token per VU). On INSUFFICIENT_BALANCE the VU charges points and retries once.
//
//   .venv/bin/k6 run -e BASE_URL=http://127.0.0.1:8000 -e TOKENS=$PWD/k6/results/tokens.json \
//       [-e VUS=500] [-e TIME_SCALE=1] --out csv=k6/results/event.csv.gz k6/event-simulation.js
// VUS scales every stage (the capacity run uses 100/300/500/1000); TIME_SCALE shrinks the timeline
// (0.27 gives a ~60 s smoke run). The summary goes to k6/results/event-simulation-<VUS>.json.
// Before a run: `make bench SCENARIO=event-simulation` does the reseed (restock, reset_coupons, tokens).
import exec from 'k6/execution';
import { loadTokens, userFor } from './lib/common.js';
import { TREND_STATS, writeSummary } from './lib/report.js';
import {
  cartAdd, cartView, checkoutAndPay, choose, couponIssue, points, popular, productDetail, think,
} from './lib/shop-load.js';

const tokens = loadTokens();
const VUS = parseInt(__ENV.VUS || '500', 10);
const TIME_SCALE = parseFloat(__ENV.TIME_SCALE || '1');
const THINK_MIN = parseFloat(__ENV.THINK_MIN || '0.1');
const THINK_MAX = parseFloat(__ENV.THINK_MAX || '0.5');

// [seconds, target VUs at 500] — the old suite's timeline (3 min 40 s + ramp-down grace).
const TIMELINE = [[30, 50], [10, 300], [30, 500], [60, 500], [30, 300], [30, 100], [30, 0]];
const stages = TIMELINE.map(([seconds, target]) => ({
  duration: `${Math.max(1, Math.round(seconds * TIME_SCALE))}s`,
  target: Math.round((target * VUS) / 500),
}));
const EVENT_START_MS = 30_000 * TIME_SCALE;
const EVENT_END_MS = (30 + 10 + 30 + 60 + 30) * 1000 * TIME_SCALE;

export const options = {
  scenarios: { blackFriday: { executor: 'ramping-vus', startVUs: 0, stages, gracefulRampDown: '10s' } },
  thresholds: { server_errors: ['count==0'], timeouts: ['count==0'], http_req_failed: ['rate==0'] },
  summaryTrendStats: TREND_STATS,
};

const EVENT_MIX = { coupon: 20, product: 20, cartAdd: 15, checkout: 20, popular: 15, points: 10 };
const BROWSE_MIX = { product: 60, popular: 20, cart: 20 };

export function setup() {
  if (Object.keys(tokens).length < VUS) throw new Error(`need a token per VU: ${Object.keys(tokens).length} < ${VUS}`);
}

function eventIteration(u) {
  switch (choose(EVENT_MIX)) {
    case 'coupon': couponIssue(u); break;
    case 'product': productDetail(0.7); break;
    case 'cartAdd': cartAdd(u); break;
    case 'checkout': checkoutAndPay(u, 0.5); break;
    case 'popular': popular(); break;
    default: points(u);
  }
  think(THINK_MIN, THINK_MAX);
}

function browseIteration(u) {
  switch (choose(BROWSE_MIX)) {
    case 'product': productDetail(0.7); break;
    case 'popular': popular(); break;
    default: cartView(u);
  }
  think(1, 3);
}

export default function () {
  const u = userFor(tokens, __VU);
  const elapsed = exec.instance.currentTestRunDuration;
  if (elapsed >= EVENT_START_MS && elapsed < EVENT_END_MS) eventIteration(u);
  else browseIteration(u);
}

export function handleSummary(summary) {
  return writeSummary('event-simulation', `event-simulation-${VUS}`, summary, { vus: VUS, timeScale: TIME_SCALE });
}
