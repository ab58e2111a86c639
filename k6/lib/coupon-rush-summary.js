// A small text summary for k6 handleSummary (jslib's textSummary cannot be fetched here).

function fmt(value, unit) {
  if (value === undefined || value === null) return '-';
  return unit === 'ms' ? `${value.toFixed(1)} ms` : `${Math.round(value)}`;
}

export function couponRushText(data, title) {
  const m = data.metrics;
  const d = m.http_req_duration ? m.http_req_duration.values : {};
  const lines = [
    `== ${title} ==`,
    `requests            ${fmt(m.http_reqs && m.http_reqs.values.count)} (${fmt(m.http_reqs && m.http_reqs.values.rate)}/s)`,
    `duration p50/p95/p99/max  ${fmt(d.med, 'ms')} / ${fmt(d['p(95)'], 'ms')} / ${fmt(d['p(99)'], 'ms')} / ${fmt(d.max, 'ms')}`,
    `unexpected (not 200/409) ${fmt(m.http_req_failed && m.http_req_failed.values.passes)}`,
  ];
  for (const name of Object.keys(m).sort()) {
    if (name.startsWith('coupon_')) lines.push(`${name.padEnd(28)} ${fmt(m[name].values.count)}`);
  }
  return lines.join('\n') + '\n';
}
