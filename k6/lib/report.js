// handleSummary for the load suite: a compact JSON summary (what bench/report.py and docs/REPORT.md
// quote) under k6/results/, plus a short text table on stdout (jslib's textSummary cannot be fetched).
import { ENDPOINTS } from './shop-load.js';

const RESULTS_DIR = __ENV.RESULTS_DIR || 'k6/results';

function trendStats(metric) {
  if (!metric || !metric.values.count) return null;
  const v = metric.values;
  return { count: v.count, med: v.med, p90: v['p(90)'], p95: v['p(95)'], p99: v['p(99)'], max: v.max };
}

function count(metric) {
  return metric ? metric.values.count : 0;
}

export function compactSummary(scenario, summary, extra = {}) {
  const m = summary.metrics;
  const seconds = summary.state.testRunDurationMs / 1000;
  const requests = count(m.http_reqs);
  const failed = m.http_req_failed ? m.http_req_failed.values.passes : 0;
  const endpoints = {};
  for (const name of [...ENDPOINTS, 'flow']) {
    const stats = trendStats(m[`t_${name}`]);
    if (stats) endpoints[name] = stats;
  }
  const statuses = {};
  for (const key of Object.keys(m)) {
    if (key.startsWith('status_') && count(m[key]) > 0) statuses[key.slice(7)] = count(m[key]);
  }
  return {
    scenario,
    ...extra,
    seconds,
    requests,
    requestsPerSecond: requests / seconds,
    failed,
    successRate: requests ? 1 - failed / requests : 1,
    serverErrors: count(m.server_errors),
    timeouts: count(m.timeouts),
    shed: count(m.shed),
    paidOrders: count(m.paid_orders),
    couponsIssued: count(m.coupons_issued),
    chargeRetries: count(m.charge_retries),
    paymentsRefused: count(m.payments_refused),
    maxVUs: m.vus_max ? m.vus_max.values.max : null,
    endpoints,
    statuses,
  };
}

function fmt(value) {
  return value === undefined || value === null ? '-' : value.toFixed(1);
}

export function summaryText(report) {
  const lines = [
    `== ${report.scenario}${report.label ? ` (${report.label})` : ''} ==`,
    `requests ${report.requests} in ${report.seconds.toFixed(0)} s (${report.requestsPerSecond.toFixed(1)}/s), ` +
      `success ${(report.successRate * 100).toFixed(3)} %, 5xx ${report.serverErrors}, timeouts ${report.timeouts}, ` +
      `shed (503 OVERLOADED) ${report.shed}`,
    `paid orders ${report.paidOrders}, coupons issued ${report.couponsIssued}, top-ups ${report.chargeRetries}`,
    'endpoint          count      p50      p95      p99      max (ms)',
  ];
  for (const [name, s] of Object.entries(report.endpoints)) {
    lines.push(`${name.padEnd(15)} ${String(s.count).padStart(7)} ${fmt(s.med).padStart(8)} ${fmt(s.p95).padStart(8)} ` +
      `${fmt(s.p99).padStart(8)} ${fmt(s.max).padStart(8)}`);
  }
  lines.push(`statuses ${JSON.stringify(report.statuses)}`);
  return lines.join('\n') + '\n';
}

// `name` is the file stem: k6/results/<name>.json (RESULTS_DIR / OUT override it).
export function writeSummary(scenario, name, summary, extra = {}) {
  const report = compactSummary(scenario, summary, extra);
  const out = __ENV.OUT || `${RESULTS_DIR}/${name}.json`;
  return { [out]: JSON.stringify(report, null, 2), stdout: summaryText(report) };
}

export const TREND_STATS = ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max', 'count'];
