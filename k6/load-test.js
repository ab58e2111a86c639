// Mixed load, the old suite's mix: ramping to 100 VUs over 5 minutes.
//   25 % cursor list, 20 % detail, 15 % popular, 10 % daily ranking, 7 % cart view, 5 % cart add,
//   10 % checkout (left unpaid: it expires), 5 % checkout + payment, 3 % coupon issue;
//   think time 0.5-1.5 s. 100 VUs is where the old service's SLA table was measured.
//   .venv/bin/k6 run -e BASE_URL=http://127.0.0.1:8000 -e TOKENS=$PWD/k6/results/tokens.json k6/load-test.js
// VUS (default 100) and TIME_SCALE (default 1) scale the ramp. Summary: k6/results/load-test-<VUS>.json.
import { loadTokens, userFor } from './lib/common.js';
import { TREND_STATS, writeSummary } from './lib/report.js';
import {
  cartAdd, cartView, checkoutAndPay, checkoutOnly, choose, couponIssue, dailyRanking, popular, productDetail,
  productsPage, think,
} from './lib/shop-load.js';

const tokens = loadTokens();
const VUS = parseInt(__ENV.VUS || '100', 10);
const TIME_SCALE = parseFloat(__ENV.TIME_SCALE || '1');
const seconds = (s) => `${Math.max(1, Math.round(s * TIME_SCALE))}s`;

export const options = {
  scenarios: {
    mixed: {
      executor: 'ramping-vus',
      startVUs: 0,
      stages: [
        { duration: seconds(60), target: Math.round(VUS / 4) },
        { duration: seconds(60), target: Math.round(VUS / 2) },
        { duration: seconds(60), target: VUS },
        { duration: seconds(120), target: VUS },
        { duration: seconds(15), target: 0 },
      ],
      gracefulRampDown: '10s',
    },
  },
  thresholds: { server_errors: ['count==0'], timeouts: ['count==0'], http_req_failed: ['rate==0'] },
  summaryTrendStats: TREND_STATS,
};

const MIX = { list: 25, detail: 20, popular: 15, ranking: 10, cartView: 7, cartAdd: 5, checkout: 10, flow: 5, coupon: 3 };

export default function () {
  const u = userFor(tokens, __VU);
  switch (choose(MIX)) {
    case 'list': productsPage(); break;
    case 'detail': productDetail(0.2); break;
    case 'popular': popular(); break;
    case 'ranking': dailyRanking(); break;
    case 'cartView': cartView(u); break;
    case 'cartAdd': cartAdd(u); break;
    case 'checkout': checkoutOnly(u, 0.2); break;
    case 'flow': checkoutAndPay(u, 0.2); break;
    default: couponIssue(u);
  }
  think(0.5, 1.5);
}

export function handleSummary(summary) {
  return writeSummary('load-test', `load-test-${VUS}`, summary, { vus: VUS });
}
