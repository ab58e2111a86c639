// Shared k6 helpers (no remote imports: jslib cannot be fetched on these machines).
import http from 'k6/http';

// BASE_URLS=http://127.0.0.1:8000,http://127.0.0.1:8100 spreads the VUs over several API instances
// (`make cluster`): VU n talks to instance n mod count. BASE_URL alone targets one.
const BASE_URLS = (__ENV.BASE_URLS || __ENV.BASE_URL || 'http://127.0.0.1:8000').split(',').map((u) => u.trim());
export const BASE_URL = BASE_URLS[0];
export function baseUrl() {
  return BASE_URLS[__VU % BASE_URLS.length];
}
const TOKENS_FILE = __ENV.TOKENS || '../k6/results/tokens.json';

// {userId: accessToken}, written by `make tokens` (manage.py issue_tokens).
export function loadTokens() {
  return JSON.parse(open(TOKENS_FILE));
}

export function userFor(tokens, vu, offset = 0) {
  const ids = Object.keys(tokens);
  const userId = ids[(vu - 1 + offset) % ids.length];
  return { userId: Number(userId), token: tokens[userId] };
}

export function jsonHeaders(token, extra = {}) {
  return { headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}`, ...extra } };
}

export function post(path, body, token, tags = {}) {
  return http.post(`${baseUrl()}${path}`, JSON.stringify(body), { ...jsonHeaders(token), tags });
}

export function get(path, token, tags = {}) {
  const params = token ? { headers: { Authorization: `Bearer ${token}` }, tags } : { tags };
  return http.get(`${baseUrl()}${path}`, params);
}

export function data(res) {
  try {
    return res.json('data');
  } catch (e) {
    return null;
  }
}

export function errorCode(res) {
  try {
    return res.json('errorCode');
  } catch (e) {
    return null;
  }
}

export function randInt(low, high) {
  return low + Math.floor(Math.random() * (high - low + 1));
}

// 5xx and transport errors (status 0) are failures; 4xx business answers are not.
export function isServerError(res) {
  return res.status === 0 || res.status >= 500;
}
