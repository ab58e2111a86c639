// Text summary for k6/checkout-queue.js (jslib's textSummary cannot be fetched here).

function ms(metric, stat) {
  const v = metric && metric.values[stat];
  return v === undefined ? '-' : `${v.toFixed(1)} ms`;
}

function count(metric) {
  return metric ? String(metric.values.count) : '0';
}

export function checkoutQueueText(data, title) {
  const m = data.metrics;
  const trend = (name) => `p50 ${ms(m[name], 'med')}  p95 ${ms(m[name], 'p(95)')}  p99 ${ms(m[name], 'p(99)')}  max ${ms(m[name], 'max')}`;
  const lines = [
    `== ${title} ==`,
    `http requests           ${count(m.http_reqs)} (${m.http_reqs ? m.http_reqs.values.rate.toFixed(1) : 0}/s)`,
    `enqueue (POST)          ${trend('queue_enqueue_ms')}`,
    `enqueue-to-result       ${trend('queue_result_ms')}`,
    `status poll (GET)       ${trend('queue_poll_ms')}`,
  ];
  for (const name of Object.keys(m).sort()) {
    if (name.startsWith('queue_') && m[name].type === 'counter') lines.push(`${name.padEnd(24)}${count(m[name])}`);
  }
  lines.push(`unexpected statuses     ${m.http_req_failed ? m.http_req_failed.values.passes : 0}`);
  return lines.join('\n') + '\n';
}
