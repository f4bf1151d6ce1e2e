// What the presented token may do: GET v1/auth/scopes (open). The page asks for a token
// when auth is on and none (or an invalid one) is held, and offers only what the
// token's scopes allow.

import { ApiError, get, getToken, setToken } from "./api.js";
import { h } from "./dom.js";

export const auth = { enabled: false, token: null, scopes: new Set(), invalid: false };

export async function loadScopes() {
  auth.invalid = false;
  try {
    const info = await get("v1/auth/scopes");
    auth.enabled = info.enabled;
    auth.token = info.token;
    auth.scopes = new Set(info.scopes);
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401) throw err;
    auth.enabled = true;
    auth.token = null;
    auth.scopes = new Set();
    auth.invalid = true;
    setToken(null);
  }
  return auth;
}

export function can(scope) {
  return auth.scopes.has(scope);
}

// The author recorded with a label: the token's name when there is one.
export function author() {
  return auth.token ? `ui:${auth.token}` : "ui";
}

// The header's token area: a form while no token is held, else who is signed in.
export function tokenBox(onChange) {
  if (!auth.enabled) return h("span", { class: "auth-state" }, "auth off: every view open");
  if (getToken() && !auth.invalid) {
    return h(
      "span",
      { class: "auth-state" },
      h("span", { id: "token-name" }, `token ${auth.token}`),
      ` (${[...auth.scopes].join(", ") || "no scopes"}) `,
      h(
        "button",
        {
          type: "button",
          id: "forget-token",
          onclick: () => {
            setToken(null);
            onChange();
          },
        },
        "Forget token",
      ),
    );
  }
  const input = h("input", {
    type: "password",
    id: "token-input",
    autocomplete: "off",
    placeholder: "li_…",
    "aria-label": "Access token",
  });
  const form = h(
    "form",
    {
      class: "token-form",
      onsubmit: (ev) => {
        ev.preventDefault();
        setToken(input.value.trim());
        onChange();
      },
    },
    h("label", { for: "token-input" }, auth.invalid ? "Token not valid, try again:" : "Token:"),
    input,
    h("button", { type: "submit", id: "token-submit" }, "Use token"),
  );
  return form;
}
