// The page's shell: header (views, token), hash routing (#/queue, #/label/<dataset>/<sha>,
// #/lines, #/models, #/jobs) and mounting one view at a time. Each view module exports
// `title`, `scope` (what its API needs) and `mount(root, route)`, which may return a
// cleanup function called when the view is left.

import { auth, can, loadScopes, tokenBox } from "./auth.js";
import { clear, h, notice } from "./dom.js";
import * as jobs from "./jobs.js";
import * as label from "./label.js";
import * as lines from "./lines.js";
import * as models from "./models.js";
import * as queue from "./queue.js";

const VIEWS = { queue, label, lines, models, jobs };
const NAV = ["queue", "lines", "models", "jobs"];
let cleanup = null;

export function parseHash(hash) {
  const [path, qs] = (hash.replace(/^#\/?/, "") || "queue").split("?");
  const [name, ...parts] = path.split("/").map(decodeURIComponent);
  return { name: VIEWS[name] ? name : "queue", parts, query: new URLSearchParams(qs || "") };
}

function renderNav(current) {
  const nav = clear(document.getElementById("nav"));
  for (const name of NAV) {
    const view = VIEWS[name];
    const allowed = can(view.scope);
    nav.append(
      h(
        "a",
        {
          href: `#/${name}`,
          id: `nav-${name}`,
          class: name === current || (current === "label" && name === "queue") ? "active" : null,
          "aria-disabled": allowed ? null : "true",
          title: allowed ? null : `needs a token with the '${view.scope}' scope`,
        },
        view.title,
      ),
    );
  }
  const box = clear(document.getElementById("token"));
  box.append(tokenBox(start));
}

function render() {
  if (cleanup) cleanup();
  cleanup = null;
  const route = parseHash(location.hash);
  renderNav(route.name);
  const root = clear(document.getElementById("view"));
  const view = VIEWS[route.name];
  if (auth.enabled && auth.scopes.size === 0) {
    root.append(notice("info", "Tokens are configured: enter a token above to continue."));
    return;
  }
  if (!can(view.scope)) {
    root.append(notice("unavailable", `${view.title} needs a token with the '${view.scope}' scope.`));
    return;
  }
  const result = view.mount(root, route);
  cleanup = typeof result === "function" ? result : null;
}

async function start() {
  const root = document.getElementById("view");
  try {
    await loadScopes();
  } catch (err) {
    clear(root).append(notice("error", `The service did not answer: ${err.message}`));
    return;
  }
  render();
}

window.addEventListener("hashchange", render);
start();
