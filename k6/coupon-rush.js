// Coupon rush, modelled on the old service's scenario: many distinct users hammer
// POST /coupons/issue; 80 % of requests ask for the small flash coupons 1..3 (100 units each),
// 20 % for the rare ones 9..10 (10 and 5 units); each VU acts as its own user; sleep 0-100 ms.
//
//   .venv/bin/python manage.py reset_coupons --ids 1-10            # before every run
//   .venv/bin/python manage.py issue_tokens --users 1-1000 --out k6/results/tokens.json
//   .venv/bin/k6 run -e VUS=100 -e DURATION=30s k6/coupon-rush.js  # constant load
//   .venv/bin/k6 run -e VUS=500 k6/coupon-rush.js                  # ramping to 500 VUs
//
// BASE_URL defaults to http://127.0.0.1:18400. The summary goes to k6/results/coupon-rush-<VUS>.json.
// Expected answers are 200 (issued) and 409 (COUPON_SOLD_OUT / COUPON_ALREADY_ISSUED); anything else
// counts in http_req_failed, and 5xx in coupon_5xx (threshold: zero).

import http from 'k6/http';
import { check, sleep } from 'k6';
import { Counter } from 'k6/metrics';
import { couponRushText } from './lib/coupon-rush-summary.js';

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:18400';
const VUS = parseInt(__ENV.VUS || '500', 10);
const DURATION = __ENV.DURATION || '';
const RESULTS_DIR = __ENV.RESULTS_DIR || 'k6/results';

const tokens = JSON.parse(open('./results/tokens.json')); // {userId: access token}
const userIds = Object.keys(tokens).map(Number).sort((a, b) => a - b);

const issued = new Counter('coupon_issued');
const soldOut = new Counter('coupon_sold_out');
const already = new Counter('coupon_already_issued');
const other4xx = new Counter('coupon_other_4xx');
const serverErrors = new Counter('coupon_5xx');

const rampToTarget = [
  { duration: '20s', target: Math.ceil(VUS / 5) },
  { duration: '30s', target: Math.ceil(VUS / 2) },
  { duration: '30s', target: VUS },
  { duration: '60s', target: VUS },
  { duration: '20s', target: 0 },
];

export const options = {
  scenarios: {
    rush: DURATION
      ? { executor: 'constant-vus', vus: VUS, duration: DURATION }
      : { executor: 'ramping-vus', startVUs: 0, stages: rampToTarget, gracefulRampDown: '10s' },
  },
  thresholds: {
    coupon_5xx: ['count==0'],
    http_req_failed: ['rate==0'],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

http.setResponseCallback(http.expectedStatuses(200, 409));

export function setup() {
  if (userIds.length < VUS) {
    throw new Error(`need a token per VU: ${userIds.length} tokens for ${VUS} VUs`);
  }
}

function pickCoupon() {
  if (Math.random() < 0.8) return 1 + Math.floor(Math.random() * 3); // 1..3
  return 9 + Math.floor(Math.random() * 2); // 9..10
}

export default function () {
  const userId = userIds[(__VU - 1) % userIds.length]; // one distinct user per VU
  const res = http.post(
    `${BASE_URL}/api/v1/coupons/issue?userId=${userId}`,
    JSON.stringify({ couponId: pickCoupon() }),
    {
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${tokens[userId]}` },
      tags: { name: 'POST /coupons/issue' },
    },
  );
  if (res.status === 200) issued.add(1);
  else if (res.status >= 500) serverErrors.add(1);
  else if (res.status === 409) {
    const code = res.json('errorCode');
    if (code === 'COUPON_SOLD_OUT') soldOut.add(1);
    else if (code === 'COUPON_ALREADY_ISSUED') already.add(1);
    else other4xx.add(1);
  } else other4xx.add(1);
  check(res, { 'answered 200 or 409': (r) => r.status === 200 || r.status === 409 });
  sleep(Math.random() * 0.1);
}

export function handleSummary(data) {
  const title = `coupon rush, ${VUS} VUs${DURATION ? ` for ${DURATION}` : ' (ramping)'}`;
  return {
    [`${RESULTS_DIR}/coupon-rush-${VUS}.json`]: JSON.stringify(data, null, 2),
    stdout: couponRushText(data, title),
  };
}
