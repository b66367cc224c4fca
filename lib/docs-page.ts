// The API's docs page (GET /api/docs): Swagger UI from the swagger-ui-dist npm package, served by the API
// itself and fully offline. The page loads only this API's own files: the package's bundle and stylesheet
// and a small start script, each under a fingerprinted name (its content's hash) so it can be cached for a
// year; the page reads GET /api/openapi.json. No CDN, no proxy, no fonts, no validator badge
// (`validatorUrl: null`), and a Content-Security-Policy that allows nothing but the API's own origin.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { CSRF_COOKIE } from './auth';

export interface DocsAsset {
  /** The fingerprinted name the page links: `swagger-ui-bundle.3f2a….js`. */
  name: string;
  contentType: string;
  body: Uint8Array;
}

/**
 * Starts Swagger UI on the page's element, with its settings read from the element's data attributes
 * (an inline script would need the CSP to allow inline scripts). Try-it-out requests carry the browser's
 * cookies, and an unsafe one echoes the CSRF cookie (readable on the API's own host, which serves this
 * page) in the X-CSRF-Token header, as the portals do; Swagger UI's Authorize dialog takes a Bearer token.
 */
const START_SCRIPT = `'use strict';
function csrfCookie() {
  var match = document.cookie.match(/(?:^|; )${CSRF_COOKIE}=([^;]*)/);
  return match ? decodeURIComponent(match[1]) : '';
}
function withCsrfHeader(request) {
  var token = csrfCookie();
  if (token && !/^(GET|HEAD|OPTIONS)$/i.test(request.method)) request.headers['X-CSRF-Token'] = token;
  return request;
}
window.addEventListener('DOMContentLoaded', function () {
  var element = document.getElementById('swagger-ui');
  window.ui = SwaggerUIBundle({
    domNode: element,
    url: element.dataset.openapiUrl,
    validatorUrl: null,
    deepLinking: false,
    tryItOutEnabled: false,
    withCredentials: true,
    requestInterceptor: withCsrfHeader,
    presets: [SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout'
  });
});
`;

/**
 * What the page may do: its own scripts and styles, data: images (Swagger UI's icons are inline SVG in its
 * stylesheet), requests to its own origin (the OpenAPI document, try-it-out); nothing else: no inline
 * script, no eval, no fonts, no frames, no forms posting elsewhere, never framed itself.
 */
export const DOCS_PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const requireHere = createRequire(__filename);

function fingerprinted(file: string, contentType: string, body: Uint8Array): DocsAsset {
  const hash = createHash('sha256').update(body).digest('hex').slice(0, 16);
  const extension = path.extname(file);
  return { name: `${path.basename(file, extension)}.${hash}${extension}`, contentType, body };
}

let assets: Map<string, DocsAsset> | undefined;

/** The page's assets by fingerprinted name, read once per instance from the package (about 2 MB). */
export function docsAssets(): Map<string, DocsAsset> {
  if (!assets) {
    const dist = path.dirname(requireHere.resolve('swagger-ui-dist/package.json'));
    const read = (file: string) => readFileSync(path.join(dist, file));
    assets = new Map(
      [
        fingerprinted('swagger-ui-bundle.js', 'text/javascript; charset=utf-8', read('swagger-ui-bundle.js')),
        fingerprinted('swagger-ui.css', 'text/css; charset=utf-8', read('swagger-ui.css')),
        fingerprinted('docs-start.js', 'text/javascript; charset=utf-8', Buffer.from(START_SCRIPT)),
      ].map((asset) => [asset.name, asset]),
    );
  }
  return assets;
}

function assetNamed(prefix: string): string {
  const asset = [...docsAssets().values()].find((each) => each.name.startsWith(`${prefix}.`));
  if (!asset) throw new Error(`docs page: no asset ${prefix}`);
  return asset.name;
}

const escapeAttribute = (value: string) =>
  value.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * The page, for the path it was asked at (`/api/docs`): the asset and document URLs are built from that
 * path, so they hold under any route prefix and with or without a trailing slash.
 */
export function docsPage(pagePath: string): string {
  const base = pagePath.replace(/\/+$/, '');
  const asset = (prefix: string) => escapeAttribute(`${base}/assets/${assetNamed(prefix)}`);
  const openapiUrl = escapeAttribute(base.replace(/\/docs$/, '/openapi.json'));
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>AADA LMS API</title>
    <link rel="icon" href="data:," />
    <link rel="stylesheet" href="${asset('swagger-ui')}" />
  </head>
  <body>
    <div id="swagger-ui" data-openapi-url="${openapiUrl}"></div>
    <script src="${asset('swagger-ui-bundle')}"></script>
    <script src="${asset('docs-start')}"></script>
  </body>
</html>
`;
}
