// The one way the page talks to the service: relative URLs (so the page works behind a
// path prefix), the token from sessionStorage as "Authorization: Bearer", errors as
// ApiError carrying the service's {error, message} body.

const TOKEN_KEY = "lineinspect.token";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }

  // A route this service does not have (yet): the view says "not available".
  get unavailable() {
    return this.status === 404 || this.status === 405;
  }
}

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

function headers(extra = {}) {
  const out = { Accept: "application/json", ...extra };
  const token = getToken();
  if (token) out.Authorization = `Bearer ${token}`;
  return out;
}

async function failure(resp) {
  let code = `http_${resp.status}`;
  let message = resp.statusText || `HTTP ${resp.status}`;
  try {
    const body = await resp.json();
    if (body && body.error) code = body.error;
    if (body && body.message) message = body.message;
  } catch {
    // not JSON: keep the status text
  }
  return new ApiError(resp.status, code, message);
}

// The path with its query (undefined, null and "" values left out).
export function url(path, query = {}) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === "") continue;
    for (const v of Array.isArray(value) ? value : [value]) params.append(key, String(v));
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

export async function request(method, path, { query, body } = {}) {
  const init = { method, headers: headers() };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(url(path, query), init);
  if (!resp.ok) throw await failure(resp);
  if (resp.status === 204) return null;
  return resp.json();
}

export const get = (path, query) => request("GET", path, { query });
export const put = (path, body, query) => request("PUT", path, { body, query });
export const post = (path, body) => request("POST", path, { body });
export const del = (path) => request("DELETE", path);

// A sample's image as a blob: URL (an <img> cannot send the token itself). The caller
// revokes it with URL.revokeObjectURL when done.
export async function imageUrl(sha256, dataset) {
  const resp = await fetch(url(`v1/samples/${sha256}/image`, { dataset }), { headers: headers() });
  if (!resp.ok) throw await failure(resp);
  return URL.createObjectURL(await resp.blob());
}
