// A module's content files: upload by name (the body is the file itself, its type judged by its bytes;
// images stripped of metadata; per-type size limits), the list for editors, retiring, and serving a file
// to the module's readers streamed, with single byte ranges (206, 416) for audio and video players.
// Rules and SQL: lib/content-files.ts; who: lib/lessons.ts (the same reach as the lessons); caching and
// the list of types: docs/content.md.
import { Readable } from 'node:stream';
import { z } from 'zod';
import {
  CONTENT_FILE_NAME,
  findContentFile,
  listContentFiles,
  MAX_CONTENT_FILE_BYTES,
  rangeOf,
  retireContentFile,
  storeContentFile,
  toContentFileView,
} from '../lib/content-files';
import { endpoint } from '../lib/endpoint';
import { declareConstraints, HttpError, notFound } from '../lib/errors';
import { openFile, openFileRange } from '../lib/files';
import { ifNoneMatchHits, json, notModified, type Reply } from '../lib/http';
import { CONTENT_EDITORS, CONTENT_READERS, contentScope, reachableModule } from '../lib/lessons';

declareConstraints({
  content_files_current_name_key: {
    status: 409,
    field: 'name',
    message: 'Another file of this name was uploaded at the same moment; try again',
  },
});

const ModuleParams = z.object({ moduleId: z.uuid() });
const FileParams = z.object({
  moduleId: z.uuid(),
  name: z
    .string()
    .regex(CONTENT_FILE_NAME, 'A file name of letters, digits, spaces and ._()- with an extension (guide.pdf)'),
});

const NO_MODULE = 'No module whose files you may see';

endpoint({
  name: 'content-files-upload',
  methods: ['PUT'],
  route: 'modules/{moduleId}/files/{name}',
  access: CONTENT_EDITORS,
  params: FileParams,
  streamedBody: true,
  maxBodyBytes: MAX_CONTENT_FILE_BYTES,
  handler: async function uploadContentFile({ sql, params, caller, request, audit }) {
    const module = await reachableModule(sql, contentScope(caller), params.moduleId, 'write');
    if (!module) throw notFound(NO_MODULE);
    const body = (request.body as AsyncIterable<Uint8Array> | null) ?? Readable.from([]);
    const { row, replaced } = await storeContentFile(
      sql,
      { moduleId: module.id, name: params.name, declaredType: request.headers.get('content-type'), body },
      caller.userId,
    );
    audit.resourceIds.contentFileId = row.id;
    return json(toContentFileView(row), replaced ? 200 : 201);
  },
});

endpoint({
  name: 'content-files-list',
  methods: ['GET'],
  route: 'modules/{moduleId}/files',
  access: CONTENT_EDITORS,
  params: ModuleParams,
  handler: async function listModuleFiles({ sql, params, caller }) {
    const module = await reachableModule(sql, contentScope(caller), params.moduleId, 'write');
    if (!module) throw notFound(NO_MODULE);
    return json({ items: (await listContentFiles(sql, module.id)).map(toContentFileView) });
  },
});

endpoint({
  name: 'content-files-retire',
  methods: ['DELETE'],
  route: 'modules/{moduleId}/files/{name}',
  access: CONTENT_EDITORS,
  params: FileParams,
  handler: async function retireModuleFile({ sql, params, caller }) {
    const module = await reachableModule(sql, contentScope(caller), params.moduleId, 'write');
    if (!module || !(await retireContentFile(sql, module.id, params.name, caller.userId))) {
      throw notFound('No such file of a module you may change');
    }
    return { kind: 'empty', status: 204 };
  },
});

const rangeNotSatisfiable = (size: number) =>
  new HttpError({
    status: 416,
    slug: 'range-not-satisfiable',
    title: 'Range not satisfiable',
    detail: `The file has ${size} bytes`,
    errors: [{ field: 'headers.range', message: `The file has ${size} bytes` }],
    headers: { 'Content-Range': `bytes */${size}` },
  });

endpoint({
  name: 'content-files-get',
  methods: ['GET'],
  route: 'modules/{moduleId}/files/{name}',
  access: CONTENT_READERS,
  // A file changes only when one of its name is uploaded again: the browser keeps it and revalidates
  // with the file's SHA-256 as ETag (a 304 reads two rows and no blob).
  cache: 'private',
  params: FileParams,
  handler: async function serveContentFile({ sql, params, caller, request }): Promise<Reply> {
    const module = await reachableModule(sql, contentScope(caller), params.moduleId, 'read');
    const row = module ? await findContentFile(sql, module.id, params.name) : null;
    if (!row) throw notFound('No such file of a module you may see');
    const etag = `"${row.sha256.toString('base64url')}"`;
    if (ifNoneMatchHits(request.headers.get('if-none-match'), etag)) return notModified(etag);
    const size = Number(row.byte_size);
    const range = rangeOf(request.headers.get('range'), size);
    if (range.kind === 'unsatisfiable') throw rangeNotSatisfiable(size);
    // A range is read from the segment holding its first byte, not decrypted from the file's start.
    const opened =
      range.kind === 'whole'
        ? await openFile(sql, row.stored_file_id)
        : await openFileRange(sql, row.stored_file_id, range.start, range.end);
    if (!opened) throw notFound('No such file of a module you may see');
    const headers = {
      ETag: etag,
      'Accept-Ranges': 'bytes',
      // Shown in the page (a video, a PDF), never run: nosniff and the API's CSP stand.
      'Content-Disposition': `inline; filename="${row.name.replace(/"/g, '')}"`,
    };
    if (range.kind === 'whole') {
      return {
        kind: 'stream',
        status: 200,
        contentType: row.content_type,
        body: opened.content,
        headers: { ...headers, 'Content-Length': String(size) },
      };
    }
    return {
      kind: 'stream',
      status: 206,
      contentType: row.content_type,
      body: opened.content,
      headers: {
        ...headers,
        'Content-Length': String(range.end - range.start + 1),
        'Content-Range': `bytes ${range.start}-${range.end}/${size}`,
      },
    };
  },
});
