// Summary for k6/cache-stampede.js: per-endpoint count, rate, latency and the ratio to /healthz.

export const ENDPOINTS = ['popular', 'ranking_daily', 'category_list', 'detail', 'cursor_list', 'healthz'];

const OLD_SERVICE_REQUESTS_100_VUS_30S = 98634;

const round = (v, digits = 1) => (v === undefined || v === null ? null : Number(v.toFixed(digits)));

export function stampedeReport(data, { vus, duration, healthzShare }) {
  const m = data.metrics;
  const seconds = data.state.testRunDurationMs / 1000;
  const endpoints = {};
  for (const name of ENDPOINTS) {
    const t = m[`t_${name}`];
    if (!t || !t.values.count) continue;
    const v = t.values;
    endpoints[name] = {
      requests: v.count,
      rps: round(v.count / seconds),
      avgMs: round(v.avg, 2),
      medMs: round(v.med, 2),
      p95Ms: round(v['p(95)'], 2),
      p99Ms: round(v['p(99)'], 2),
      maxMs: round(v.max, 1),
    };
  }
  // Per-request cost relative to a view that does nothing, measured in the same run (same queueing).
  const health = endpoints.healthz;
  if (health) {
    for (const e of Object.values(endpoints)) e.speedVsHealthz = round(health.avgMs / e.avgMs, 2);
  }
  const total = m.http_reqs.values.count;
  return {
    vus,
    duration,
    healthzShare,
    seconds: round(seconds),
    requests: total,
    rps: round(total / seconds),
    failed: m.http_req_failed ? m.http_req_failed.values.passes : 0,
    errors: m.stampede_errors ? m.stampede_errors.values.count : 0,
    p95Ms: round(m.http_req_duration.values['p(95)'], 2),
    vsOldService100Vus30s: vus === 100 ? round(total / OLD_SERVICE_REQUESTS_100_VUS_30S, 3) : null,
    endpoints,
  };
}

export function stampedeText(r) {
  const lines = [
    `== cache stampede: ${r.vus} VUs, ${r.duration}, healthz share ${r.healthzShare} ==`,
    `requests ${r.requests} in ${r.seconds} s = ${r.rps}/s, p95 ${r.p95Ms} ms, failed ${r.failed}, errors ${r.errors}`,
  ];
  if (r.vsOldService100Vus30s !== null) lines.push(`vs old service (98,634 requests): ${r.vsOldService100Vus30s}`);
  lines.push('endpoint          requests     req/s   med ms   p95 ms   p99 ms  vs healthz');
  for (const [name, e] of Object.entries(r.endpoints)) {
    lines.push(
      `${name.padEnd(16)} ${String(e.requests).padStart(9)} ${String(e.rps).padStart(9)} ${String(e.medMs).padStart(8)}` +
        ` ${String(e.p95Ms).padStart(8)} ${String(e.p99Ms).padStart(8)} ${String(e.speedVsHealthz ?? '-').padStart(10)}`,
    );
  }
  return lines.join('\n') + '\n';
}
