// The docs page for portal developers: GET /api/docs (Swagger UI over GET /api/openapi.json) and its
// fingerprinted assets, served by the API from the swagger-ui-dist package, offline (lib/docs-page.ts).
import { z } from 'zod';
import { DOCS_PAGE_CSP, docsAssets, docsPage } from '../lib/docs-page';
import { endpoint } from '../lib/endpoint';
import { notFound } from '../lib/errors';
import { bytes } from '../lib/http';

endpoint({
  name: 'docs-page',
  methods: ['GET'],
  route: 'docs',
  access: 'public',
  // The page names its assets by content hash: a new release is seen within the catalogue's five minutes.
  cache: 'public',
  handler: async function serveDocsPage({ request }) {
    return bytes(Buffer.from(docsPage(new URL(request.url).pathname)), 'text/html; charset=utf-8', {
      'Content-Security-Policy': DOCS_PAGE_CSP,
    });
  },
});

const AssetParams = z.object({
  file: z
    .string()
    .max(80)
    .regex(/^[a-z-]+\.[0-9a-f]{16}\.(js|css)$/, 'A fingerprinted asset name, as the docs page links it'),
});

endpoint({
  name: 'docs-asset',
  methods: ['GET'],
  route: 'docs/assets/{file}',
  access: 'public',
  params: AssetParams,
  // The name changes with the content: a year, never revalidated.
  cache: 'immutable',
  handler: async function serveDocsAsset({ params }) {
    const asset = docsAssets().get(params.file);
    if (!asset) throw notFound('No such asset (the docs page links the current ones)');
    return bytes(asset.body, asset.contentType);
  },
});
