// Payment burst: ramping to 200 VUs; every iteration is a checkout then its payment
// (30 % on the flash products 1..5). On INSUFFICIENT_BALANCE (at checkout or payment) the VU charges
// 1,000,000 points and retries once: with that, every order with enough points must be paid
// (incident 3: the old service fell to 76.5 % payment success).
//   .venv/bin/k6 run -e BASE_URL=http://127.0.0.1:8000 -e TOKENS=$PWD/k6/results/tokens.json k6/payment-burst.js
// VUS (default 200), TIME_SCALE (default 1). Summary: k6/results/payment-burst-<VUS>.json.
import { loadTokens, userFor } from './lib/common.js';
import { TREND_STATS, writeSummary } from './lib/report.js';
import { checkoutAndPay, think } from './lib/shop-load.js';

const tokens = loadTokens();
const VUS = parseInt(__ENV.VUS || '200', 10);
const TIME_SCALE = parseFloat(__ENV.TIME_SCALE || '1');
const seconds = (s) => `${Math.max(1, Math.round(s * TIME_SCALE))}s`;

export const options = {
  scenarios: {
    burst: {
      executor: 'ramping-vus',
      startVUs: 0,
      stages: [
        { duration: seconds(20), target: Math.round(VUS / 4) },
        { duration: seconds(20), target: VUS },
        { duration: seconds(60), target: VUS },
        { duration: seconds(10), target: 0 },
      ],
      gracefulRampDown: '10s',
    },
  },
  thresholds: {
    server_errors: ['count==0'], timeouts: ['count==0'], http_req_failed: ['rate==0'],
    payments_refused: ['count==0'],
  },
  summaryTrendStats: TREND_STATS,
};

export function setup() {
  if (Object.keys(tokens).length < VUS) throw new Error(`need a token per VU: ${Object.keys(tokens).length} < ${VUS}`);
}

export default function () {
  checkoutAndPay(userFor(tokens, __VU), 0.3, 0.1);
  think(0.1, 0.3);
}

export function handleSummary(summary) {
  return writeSummary('payment-burst', `payment-burst-${VUS}`, summary, { vus: VUS });
}
