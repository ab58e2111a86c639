// Every checkout through the queue (issue 17), modelled on the old service's final checkout test: VUs
// ramp 10 -> 300, each VU is its own user and sends POST /api/v1/checkout with one direct item on a
// random product 1..5, then thinks 0.1-0.3 s. Reports the checkout p95 (t_checkout) and the share of
// 200s, split by mode (QUEUED / SYNC_FALLBACK: the broker did not acknowledge in time).
//   .venv/bin/k6 run -e BASE_URL=http://127.0.0.1:8000 -e TOKENS=$PWD/k6/results/tokens.json k6/checkout-all-queued.js
// VUS (default 300), TIME_SCALE (default 1), SYNC=1 (the same load on /checkout/initiate).
// Summary: k6/results/checkout-all-queued-<VUS>.json (checkout-sync-<VUS>.json with SYNC=1).
//
// Products 1..5 are the flash-sale products: the per-user limits apply (FLASH_SALE_MAX_PER_USER units of
// each per user, MAX_OPEN_ORDERS_PER_USER unpaid orders, nothing is paid here), so after a VU's first
// few checkouts most answers are 409 PURCHASE_LIMIT_EXCEEDED / TOO_MANY_OPEN_ORDERS, refused at admission
// without queueing; `refusals` counts them by code. Start the stack with those limits raised to measure the
// queue itself like for like with the old service (which had none). 5xx and timeouts are failures.
import { Counter, Rate } from 'k6/metrics';
import { errorCode, data, loadTokens, randInt, userFor } from './lib/common.js';
import { TREND_STATS, writeSummary } from './lib/report.js';
import { postJson, think } from './lib/shop-load.js';

const tokens = loadTokens();
const VUS = parseInt(__ENV.VUS || '300', 10);
const TIME_SCALE = parseFloat(__ENV.TIME_SCALE || '1');
// SYNC=1 sends the same bodies to the synchronous /checkout/initiate instead: the comparison REPORT.md gives.
const SYNC = __ENV.SYNC === '1';
const PATH = SYNC ? '/api/v1/checkout/initiate' : '/api/v1/checkout';
const NAME = SYNC ? 'checkout-sync' : 'checkout-all-queued';
const seconds = (s) => `${Math.max(1, Math.round(s * TIME_SCALE))}s`;

const ok200 = new Rate('checkout_200');
const queued = new Counter('checkout_queued');
const fallback = new Counter('checkout_sync_fallback');
const refusals = new Counter('refusals');

export const options = {
  scenarios: {
    ramp: {
      executor: 'ramping-vus',
      startVUs: Math.min(10, VUS),
      stages: [
        { duration: seconds(30), target: Math.round(VUS / 3) },
        { duration: seconds(30), target: VUS },
        { duration: seconds(60), target: VUS },
        { duration: seconds(10), target: 0 },
      ],
      gracefulRampDown: '10s',
    },
  },
  thresholds: { server_errors: ['count==0'], timeouts: ['count==0'] },
  summaryTrendStats: TREND_STATS,
};

export function setup() {
  if (Object.keys(tokens).length < VUS) throw new Error(`need a token per VU: ${Object.keys(tokens).length} < ${VUS}`);
}

export default function () {
  const u = userFor(tokens, __VU);
  const line = { productId: randInt(1, 5), quantity: 1 };
  // the same line; the synchronous endpoint names it directOrderItems (API.md), /checkout names it items
  const body = SYNC ? { userId: u.userId, directOrderItems: [line] } : { userId: u.userId, items: [line] };
  const res = postJson('checkout', PATH, body, u.token);
  ok200.add(res.status === 200);
  if (res.status === 200) {
    const accepted = data(res) || {};
    if (!SYNC) (accepted.mode === 'SYNC_FALLBACK' ? fallback : queued).add(1);
  } else if (res.status >= 400 && res.status < 500) {
    refusals.add(1, { code: errorCode(res) || String(res.status) });
  }
  think(0.1, 0.3);
}

function count(metric) {
  return metric ? metric.values.count : 0;
}

export function handleSummary(summary) {
  const m = summary.metrics;
  const extra = {
    vus: VUS,
    path: PATH,
    share200: m.checkout_200 ? m.checkout_200.values.rate : 0,
    queued: count(m.checkout_queued),
    syncFallback: count(m.checkout_sync_fallback),
    refusals: count(m.refusals),
  };
  const out = writeSummary(NAME, `${NAME}-${VUS}`, summary, extra);
  out.stdout += `share of 200s ${(extra.share200 * 100).toFixed(2)} % (queued ${extra.queued}, ` +
    `SYNC_FALLBACK ${extra.syncFallback}), 4xx refusals ${extra.refusals}\n`;
  return out;
}
