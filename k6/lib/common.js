// Shared k6 helpers (no remote imports: jslib cannot be fetched on these machines).
import http from 'k6/http';

export const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8000';
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
  return http.post(`${BASE_URL}${path}`, JSON.stringify(body), { ...jsonHeaders(token), tags });
}

export function get(path, token, tags = {}) {
  const params = token ? { headers: { Authorization: `Bearer ${token}` }, tags } : { tags };
  return http.get(`${BASE_URL}${path}`, params);
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
