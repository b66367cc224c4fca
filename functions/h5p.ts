// H5P activities of a module: upload of a .h5p package under an activity key (validated, unpacked once
// into the files store), the list for editors, retiring, the activity for its readers (its h5p.json and
// a short-lived signed base address for its files), and the files themselves at that signed address.
// Rules and SQL: lib/h5p.ts; who: lib/lessons.ts (the same reach as the lessons); docs/content.md.
import { Readable } from 'node:stream';
import { z } from 'zod';
import type { AnySql } from '../lib/db';
import { endpoint } from '../lib/endpoint';
import type { AuditNotes } from '../lib/endpoint-types';
import { declareConstraints, HttpError, notFound } from '../lib/errors';
import { openFile } from '../lib/files';
import {
  ACTIVITY_KEY,
  assetBase,
  assetGrant,
  checkGrant,
  checkReaderGrant,
  findCurrentH5pActivity,
  findH5pActivity,
  findH5pFile,
  listH5pActivities,
  MAX_PACKAGE_BYTES,
  PLAYER_GRANT_MAX,
  playerAddress,
  retireH5pActivity,
  storeH5pActivity,
  toH5pActivityView,
} from '../lib/h5p';
import { playerPage, playerPageCsp, playerRuntime } from '../lib/h5p-player';
import { findH5pState, H5P_STATE_BODY_BYTES, parseStateBody, saveH5pState } from '../lib/h5p-state';
import { bytes, ifNoneMatchHits, json, notModified, type Reply } from '../lib/http';
import { CONTENT_EDITORS, CONTENT_READERS, contentScope, reachableModule } from '../lib/lessons';

declareConstraints({
  h5p_activities_current_key: {
    status: 409,
    field: 'activityKey',
    message: 'Another package of this key was uploaded at the same moment; try again',
  },
});

const ModuleParams = z.object({ moduleId: z.uuid() });
const ActivityParams = z.object({
  moduleId: z.uuid(),
  activityKey: z
    .string()
    .regex(ACTIVITY_KEY, 'An activity key of letters, digits, _ and -, as the lesson names it in (H5P: key)'),
});
const AssetParams = z.object({
  activityId: z.uuid(),
  grant: z.string().max(80),
  file: z.string().min(1).max(255),
});

const NO_MODULE = 'No module whose activities you may see';

endpoint({
  name: 'h5p-upload',
  methods: ['PUT'],
  route: 'modules/{moduleId}/h5p/{activityKey}',
  access: CONTENT_EDITORS,
  params: ActivityParams,
  streamedBody: true,
  maxBodyBytes: MAX_PACKAGE_BYTES,
  handler: async function uploadH5pPackage({ sql, params, caller, request, audit }) {
    const module = await reachableModule(sql, contentScope(caller), params.moduleId, 'write');
    if (!module) throw notFound(NO_MODULE);
    const body = (request.body as AsyncIterable<Uint8Array> | null) ?? Readable.from([]);
    const { row, replaced } = await storeH5pActivity(
      sql,
      { moduleId: module.id, activityKey: params.activityKey, body },
      caller.userId,
    );
    audit.resourceIds.h5pActivityId = row.id;
    return json(toH5pActivityView(row), replaced ? 200 : 201);
  },
});

endpoint({
  name: 'h5p-list',
  methods: ['GET'],
  route: 'modules/{moduleId}/h5p',
  access: CONTENT_EDITORS,
  params: ModuleParams,
  handler: async function listModuleActivities({ sql, params, caller }) {
    const module = await reachableModule(sql, contentScope(caller), params.moduleId, 'write');
    if (!module) throw notFound(NO_MODULE);
    return json({ items: (await listH5pActivities(sql, module.id)).map(toH5pActivityView) });
  },
});

endpoint({
  name: 'h5p-retire',
  methods: ['DELETE'],
  route: 'modules/{moduleId}/h5p/{activityKey}',
  access: CONTENT_EDITORS,
  params: ActivityParams,
  handler: async function retireModuleActivity({ sql, params, caller }) {
    const module = await reachableModule(sql, contentScope(caller), params.moduleId, 'write');
    if (!module || !(await retireH5pActivity(sql, module.id, params.activityKey, caller.userId))) {
      throw notFound('No such activity of a module you may change');
    }
    return { kind: 'empty', status: 204 };
  },
});

endpoint({
  name: 'h5p-get',
  methods: ['GET'],
  route: 'modules/{moduleId}/h5p/{activityKey}',
  access: CONTENT_READERS,
  // no-store: the answer carries a signed address that works for anyone holding it until it expires.
  params: ActivityParams,
  handler: async function openActivity({ sql, params, caller }) {
    const module = await reachableModule(sql, contentScope(caller), params.moduleId, 'read');
    const row = module ? await findH5pActivity(sql, module.id, params.activityKey) : null;
    if (!row) throw notFound('No such activity of a module you may see');
    const { base, expiresAt } = assetBase(row.id);
    return json({
      ...toH5pActivityView(row),
      h5p: row.h5p_json,
      // h5p-standalone's options, and any player's: h5p.json and the libraries at the base, content/ below it.
      player: { h5pJsonPath: base, contentJsonPath: `${base}content`, librariesPath: base },
      // The API's own player page for it (lib/h5p-player.ts), for an <iframe sandbox="allow-scripts">.
      // The caller's own: the page saves their state in the activity (lib/h5p-state.ts).
      playerUrl: playerAddress(row.id, caller.userId),
      assetBase: base,
      expiresAt: expiresAt.toISOString(),
    });
  },
});

const grantRefused = (expired: boolean) =>
  new HttpError({
    status: expired ? 410 : 404,
    slug: expired ? 'h5p-address-expired' : 'not-found',
    title: expired ? 'This address has expired' : 'Not found',
    detail: expired
      ? 'The signed address of this activity has expired: open the activity again for a new one'
      : 'No such file (the address is not one this application signed)',
  });

endpoint({
  name: 'h5p-asset',
  methods: ['GET'],
  route: 'h5p-assets/{activityId}/{grant}/{*file}',
  // The signed grant in the address is the credential: a sandboxed frame sends no cookie and no token.
  access: 'public',
  cache: 'private',
  // `*` without credentials (lib/http.ts says why): its readers are players in sandboxed frames.
  cors: 'anonymous',
  params: AssetParams,
  handler: async function serveActivityFile({ sql, params, request }): Promise<Reply> {
    const check = checkGrant(params.activityId, params.grant);
    if (check !== 'valid') throw grantRefused(check === 'expired');
    const file = await findH5pFile(sql, params.activityId, params.file);
    if (!file) throw grantRefused(false);
    const etag = `"${file.sha256.toString('base64url')}"`;
    if (ifNoneMatchHits(request.headers.get('if-none-match'), etag)) return notModified(etag);
    const opened = await openFile(sql, file.stored_file_id);
    if (!opened) throw grantRefused(false);
    return {
      kind: 'stream',
      status: 200,
      contentType: file.content_type,
      body: opened.content,
      headers: {
        ETag: etag,
        'Content-Length': file.byte_size,
        // Opened as a page, it is inert: an opaque origin, no script, nothing fetched.
        'Content-Security-Policy': "sandbox; default-src 'none'; frame-ancestors *",
        // Loadable by a player in a sandboxed frame (an opaque origin) as a script, style or image too.
        'Cross-Origin-Resource-Policy': 'cross-origin',
      },
    };
  },
});

const PlayerParams = z.object({ activityId: z.uuid(), grant: z.string().max(PLAYER_GRANT_MAX) });
type PlayerParams = z.infer<typeof PlayerParams>;

endpoint({
  name: 'h5p-player',
  methods: ['GET'],
  route: 'h5p-player/{activityId}/{grant}',
  // Like its files: the grant in the address is the credential (a sandboxed frame sends no cookie). This
  // one names its reader too: the page holds their saved state in the activity and saves it under it.
  access: 'public',
  // The reader's own answers are in the page: every page served is on the audit trail, under them.
  audit: true,
  // no-store: the page holds the grants and the reader's state.
  params: PlayerParams,
  handler: async function servePlayerPage({ sql, params, request, audit }): Promise<Reply> {
    const { activity, readerId } = await grantedReader(sql, params, audit);
    const url = new URL(request.url);
    const apiBase = url.pathname.slice(0, url.pathname.indexOf('/h5p-player/'));
    const page = playerPage(apiBase, activity.title, {
      assets: `${apiBase}/h5p-assets/${activity.id}/${assetGrant(activity.id)}`,
      state: `${apiBase}/h5p-state/${activity.id}/${params.grant}`,
      previousState: (await findH5pState(sql, activity.id, readerId)).state,
    });
    return bytes(Buffer.from(page), 'text/html; charset=utf-8', {
      // Framed by the lesson: frame-ancestors decides (browsers ignore X-Frame-Options where it is set).
      'Content-Security-Policy': playerPageCsp(url.origin),
    });
  },
});

/**
 * The current activity and the reader a player grant names; refused like the files (404, 410 expired).
 * The audit row names the reader: the grant acts for them, without their token.
 */
async function grantedReader(sql: AnySql, params: PlayerParams, audit: AuditNotes) {
  const checked = checkReaderGrant(params.activityId, params.grant);
  if (checked.check !== 'valid') throw grantRefused(checked.check === 'expired');
  const activity = await findCurrentH5pActivity(sql, params.activityId);
  if (!activity) throw grantRefused(false);
  audit.actingUserId = checked.readerId;
  return { activity, readerId: checked.readerId };
}

endpoint({
  name: 'h5p-state',
  methods: ['POST'],
  route: 'h5p-state/{activityId}/{grant}',
  // The player page's grant is the credential; it names the reader whose state this is.
  access: 'public',
  // A reader's own answers: every save is on the audit trail, under their id, in its transaction.
  audit: true,
  // No CORS for the page's opaque origin (`Origin: null` is never echoed): it posts without reading the
  // answer (a simple text/plain request, lib/h5p-state.ts parseStateBody), and nothing here is readable.
  params: PlayerParams,
  rawBody: true,
  maxBodyBytes: H5P_STATE_BODY_BYTES,
  responses: { 204: null },
  problems: [400, 404, 410],
  handler: async function saveActivityState({ sql, params, rawBody, audit }): Promise<Reply> {
    const { activity, readerId } = await grantedReader(sql, params, audit);
    await saveH5pState(sql, activity.id, readerId, parseStateBody(rawBody));
    return { kind: 'empty', status: 204 };
  },
});

const RuntimeParams = z.object({
  version: z.string().regex(/^[0-9a-f]{16}$/, 'The runtime version the player page names'),
  file: z.string().min(1).max(200),
});

endpoint({
  name: 'h5p-runtime',
  methods: ['GET'],
  route: 'h5p-runtime/{version}/{*file}',
  access: 'public',
  // The path names the files' hash: a year, never revalidated.
  cache: 'immutable',
  // Fonts are fetched in CORS mode, from the player's opaque origin (lib/http.ts anonymous CORS).
  cors: 'anonymous',
  params: RuntimeParams,
  handler: async function serveRuntimeFile({ params }) {
    const runtime = playerRuntime();
    const file = params.version === runtime.version ? runtime.files.get(params.file) : undefined;
    if (!file) throw notFound('No such file of the H5P player (the player page names the current ones)');
    return bytes(file.body, file.contentType, { 'Cross-Origin-Resource-Policy': 'cross-origin' });
  },
});
