// The H5P player, served by the API: h5p-standalone's runtime (its bundles, styles and fonts, from the npm
// package pinned in package.json) under a path named by their content's hash, cached a year, and a player
// page for one activity, addressed by the activity's signed grant (lib/h5p.ts), that runs the runtime
// over the activity's files at their signed addresses.
//
// The page is meant for an `<iframe sandbox="allow-scripts">` in a lesson (never `allow-same-origin`),
// and it says so itself: its CSP starts with `sandbox allow-scripts`, so even opened on its own it runs
// in an opaque origin that cannot read the API's cookies, storage or answers. It loads scripts and
// styles only from the API's origin, runs no inline script (its settings are data attributes read by a
// start script) and may be framed only by the configured portal origins.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { config } from './config';

interface RuntimeFile {
  contentType: string;
  body: Uint8Array;
}

/** The runtime's file types; anything else in the package (its SVG logo, type declarations) is not served. */
const RUNTIME_TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
  '.gif': 'image/gif',
};

/**
 * Loaded before the runtime: puts a storage in memory where the opaque origin has none, then, once the
 * page is read, reads the player's settings and the reader's saved state from the container's data
 * attributes and starts h5p-standalone on them, embedded in the page itself (`div`: the page is already
 * the activity's own sandboxed frame), and saves the state as it changes. The body's `data-h5p-state`
 * says how it went (`ready` or `failed`), for a portal and the browser test.
 */
const START_SCRIPT = `'use strict';
// An opaque origin has no storage: reading localStorage throws, and H5P's core reads it at start. A
// storage kept in memory for the page's life stands in; what outlives the frame is the state saved below.
(function () {
  function memoryStorage() {
    var items = new Map();
    return {
      get length() { return items.size; },
      key: function (index) { return Array.from(items.keys())[index] || null; },
      getItem: function (key) { return items.has(String(key)) ? items.get(String(key)) : null; },
      setItem: function (key, value) { items.set(String(key), String(value)); },
      removeItem: function (key) { items.delete(String(key)); },
      clear: function () { items.clear(); }
    };
  }
  ['localStorage', 'sessionStorage'].forEach(function (name) {
    try {
      void window[name];
    } catch (refused) {
      Object.defineProperty(window, name, { value: memoryStorage(), configurable: true });
    }
  });
})();
// The reader's state in the activity: put in the page by the API (H5P hands it to the content type as
// its previousState), saved whenever the content reports something (an xAPI event: answered,
// completed…), every few seconds while it changes, and as the page goes away (keepalive: the request
// outlives the page). Each save is a text/plain POST, a simple request from this opaque origin, sent
// without reading the answer (no-cors: the API answers this origin nothing readable).
function stateStore(url, saved) {
  function current() {
    var instance = window.H5P && H5P.instances && H5P.instances[0];
    if (!instance || typeof instance.getCurrentState !== 'function') return undefined;
    var state = instance.getCurrentState();
    return state === undefined ? undefined : JSON.stringify(state);
  }
  return {
    save: function () {
      var state = current();
      if (state === undefined || state === saved) return;
      saved = state;
      var body = JSON.stringify({ state: state });
      fetch(url, {
        method: 'POST',
        mode: 'no-cors',
        credentials: 'omit',
        // A keepalive request may carry 64 KiB at most (a larger state is saved while the page is open).
        keepalive: body.length < 60000,
        headers: { 'Content-Type': 'text/plain' },
        body: body
      }).catch(function (error) {
        saved = null;
        console.warn('H5P player: the state was not saved (' + error + ')');
      });
    }
  };
}
window.addEventListener('DOMContentLoaded', function () {
  var element = document.getElementById('h5p-container');
  var settings = element.dataset;
  var previousState = element.hasAttribute('data-previous-state') ? settings.previousState : null;
  var store = stateStore(settings.state, previousState);
  new H5PStandalone.H5P(element, {
    h5pJsonPath: settings.assets,
    contentJsonPath: settings.assets + '/content',
    librariesPath: settings.assets,
    frameJs: settings.frameJs,
    frameCss: settings.frameCss,
    embedType: 'div',
    frame: false,
    copyright: false,
    export: false,
    embed: false,
    icon: false,
    fullScreen: false,
    // H5P's core hands a saved state to the content only while saveFreq is set; it saves through ajax
    // only for a signed-in H5P user, which this page has none of: the store above saves instead.
    saveFreq: 30,
    contentUserData: previousState === null ? undefined : [{ state: previousState }]
  }).then(function () {
    if (window.H5P && H5P.externalDispatcher) {
      H5P.externalDispatcher.on('xAPI', function () { setTimeout(store.save, 0); });
    }
    setInterval(store.save, 5000);
    window.addEventListener('pagehide', store.save);
    document.addEventListener('visibilitychange', function () {
      if (document.visibilityState === 'hidden') store.save();
    });
    document.body.setAttribute('data-h5p-state', 'ready');
  }, function (error) {
    console.error('H5P player: ' + (error && error.stack ? error.stack : error));
    document.body.setAttribute('data-h5p-state', 'failed');
    element.textContent = 'This activity could not be loaded. Open the lesson again to retry.';
  });
});
`;

const requireHere = createRequire(__filename);

interface Runtime {
  /** The hash of every file served: the path segment that changes when any of them does. */
  version: string;
  files: Map<string, RuntimeFile>;
}

let runtime: Runtime | undefined;

function listFiles(root: string, folder = ''): string[] {
  return readdirSync(path.join(root, folder), { withFileTypes: true }).flatMap((entry) => {
    const relative = folder ? `${folder}/${entry.name}` : entry.name;
    return entry.isDirectory() ? listFiles(root, relative) : [relative];
  });
}

/** The runtime's files by path (`main.bundle.js`, `styles/h5p.css`, `fonts/…`), read once per instance. */
export function playerRuntime(): Runtime {
  if (!runtime) {
    const dist = path.join(path.dirname(requireHere.resolve('h5p-standalone/package.json')), 'dist');
    const files = new Map<string, RuntimeFile>();
    for (const file of listFiles(dist).sort()) {
      const contentType = RUNTIME_TYPES[path.extname(file)];
      if (contentType) files.set(file, { contentType, body: readFileSync(path.join(dist, file)) });
    }
    files.set('player-start.js', { contentType: RUNTIME_TYPES['.js'] as string, body: Buffer.from(START_SCRIPT) });
    const hash = createHash('sha256');
    for (const [name, file] of files) hash.update(`${name}\n`).update(file.body);
    runtime = { version: hash.digest('hex').slice(0, 16), files };
  }
  return runtime;
}

const escapeAttribute = (value: string) =>
  value.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * The page's CSP. `sandbox allow-scripts`: an opaque origin wherever it is opened. Scripts, styles, fonts
 * and the package's files from the API's origin only (named explicitly as well as `'self'`, which a
 * sandboxed document may not match); inline styles, which H5P's jQuery sets on elements; framed only by
 * the API's own pages and the configured portal origins.
 */
export function playerPageCsp(apiOrigin: string): string {
  const own = `'self' ${apiOrigin}`;
  const ancestors = config().CORS_ALLOWED_ORIGINS;
  return [
    'sandbox allow-scripts',
    "default-src 'none'",
    `script-src ${own}`,
    `style-src ${own} 'unsafe-inline'`,
    `img-src ${own} data: blob:`,
    `media-src ${own} blob:`,
    `font-src ${own} data:`,
    `connect-src ${own}`,
    "base-uri 'none'",
    "form-action 'none'",
    `frame-ancestors 'self'${ancestors.map((origin) => ` ${origin}`).join('')}`,
  ].join('; ');
}

/**
 * The player page of one activity. `apiBase` is the path the API is served under (`/api`); `assets` the
 * activity's signed base address without its trailing slash; `state` the reader's state address
 * (lib/h5p-state.ts) under the page's own grant; `previousState` what that reader saved, or null.
 */
export function playerPage(
  apiBase: string,
  title: string,
  page: { assets: string; state: string; previousState: string | null },
): string {
  const { version } = playerRuntime();
  const file = (name: string) => escapeAttribute(`${apiBase}/h5p-runtime/${version}/${name}`);
  // The reader's saved state, as data (escaped): the start script hands it to H5P.
  const previous = page.previousState === null ? '' : ` data-previous-state="${escapeAttribute(page.previousState)}"`;
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>${escapeAttribute(title)}</title>
    <link rel="icon" href="data:," />
    <link rel="stylesheet" href="${file('styles/h5p.css')}" />
  </head>
  <body data-h5p-state="loading">
    <div id="h5p-container" data-assets="${escapeAttribute(page.assets)}" data-state="${escapeAttribute(page.state)}"${previous} data-frame-js="${file('frame.bundle.js')}" data-frame-css="${file('styles/h5p.css')}"></div>
    <script src="${file('player-start.js')}"></script>
    <script src="${file('main.bundle.js')}"></script>
  </body>
</html>
`;
}
