// Lessons of a module: the published lesson students read (sanitised HTML, cached privately with an
// ETag), and for the programme's editors every version (Markdown and HTML, author, time), saving a new
// version and publishing one. Rendering and sanitising: lib/lesson-html.ts; SQL and who reaches what:
// lib/lessons.ts; the grants: docs/access-policy.md, "course content"; caching: docs/content.md.
import { z } from 'zod';
import { endpoint } from '../lib/endpoint';
import { badRequest, notFound } from '../lib/errors';
import { created, json } from '../lib/http';
import {
  CONTENT_EDITORS,
  CONTENT_READERS,
  contentScope,
  findLessonVersion,
  findPublishedLesson,
  LESSON_MARKDOWN_MAX,
  lessonVersionPage,
  publishLessonVersion,
  reachableModule,
  saveLessonVersion,
  toVersionSummary,
  toVersionView,
  VERSION_ORDER,
} from '../lib/lessons';
import { limitSchema, nextLink, pageOf } from '../lib/pagination';
import { decimalInt, multiLine, singleLine } from '../lib/text';

const ModuleParams = z.object({ moduleId: z.uuid() });
const VersionParams = z.object({ moduleId: z.uuid(), version: decimalInt({ min: 1, max: 2_147_483_647 }) });

const NewVersion = z.strictObject({
  title: singleLine(200),
  markdown: multiLine(LESSON_MARKDOWN_MAX),
});

const Publication = z.strictObject({ version: z.int().min(1).max(2_147_483_647) });

const NO_MODULE = 'No module whose lessons you may see';

endpoint({
  name: 'lessons-published',
  methods: ['GET'],
  route: 'modules/{moduleId}/lesson',
  access: CONTENT_READERS,
  // The same lesson for every reader who may see it, changing only when another version is published:
  // a browser keeps it a while and revalidates with If-None-Match (a 304 costs the one query).
  cache: 'private',
  params: ModuleParams,
  handler: async function readPublishedLesson({ sql, params, caller }) {
    const lesson = await findPublishedLesson(sql, contentScope(caller), params.moduleId, caller.userId);
    if (!lesson) throw notFound('No published lesson of a module you may see');
    return json(lesson);
  },
});

endpoint({
  name: 'lessons-versions-list',
  methods: ['GET'],
  route: 'modules/{moduleId}/lesson/versions',
  access: CONTENT_EDITORS,
  params: ModuleParams,
  query: z.object({ limit: limitSchema, cursor: VERSION_ORDER.cursor }),
  handler: async function listLessonVersions({ sql, params, query, caller, request }) {
    const module = await reachableModule(sql, contentScope(caller), params.moduleId, 'write');
    if (!module) throw notFound(NO_MODULE);
    const rows = await lessonVersionPage(sql, module.id, query.cursor, query.limit);
    const page = pageOf(rows, query.limit, (read) => read.map(toVersionSummary));
    return json(page, 200, nextLink(request.url, page.next));
  },
});

endpoint({
  name: 'lessons-versions-get',
  methods: ['GET'],
  route: 'modules/{moduleId}/lesson/versions/{version}',
  access: CONTENT_EDITORS,
  params: VersionParams,
  handler: async function readLessonVersion({ sql, params, caller }) {
    const module = await reachableModule(sql, contentScope(caller), params.moduleId, 'write');
    const row = module ? await findLessonVersion(sql, module.id, params.version) : null;
    if (!row) throw notFound('No such version of a lesson you may see');
    return json(toVersionView(row));
  },
});

endpoint({
  name: 'lessons-versions-create',
  methods: ['POST'],
  route: 'modules/{moduleId}/lesson/versions',
  access: CONTENT_EDITORS,
  params: ModuleParams,
  body: NewVersion,
  // 200,000 characters of Markdown, JSON-escaped (up to 6 bytes each), and the title.
  maxBodyBytes: 1_300_000,
  handler: async function saveLesson({ sql, params, body, caller, audit }) {
    const module = await reachableModule(sql, contentScope(caller), params.moduleId, 'write');
    if (!module) throw notFound(NO_MODULE);
    const row = await saveLessonVersion(sql, module.id, body, caller.userId);
    audit.resourceIds.lessonVersionId = row.id;
    return created(toVersionView(row), `/api/modules/${module.id}/lesson/versions/${row.version}`);
  },
});

endpoint({
  name: 'lessons-publish',
  methods: ['POST'],
  route: 'modules/{moduleId}/lesson/publication',
  access: CONTENT_EDITORS,
  params: ModuleParams,
  body: Publication,
  handler: async function publishLesson({ sql, params, body, caller, audit }) {
    const module = await reachableModule(sql, contentScope(caller), params.moduleId, 'write');
    if (!module) throw notFound(NO_MODULE);
    const published = await publishLessonVersion(sql, module.id, body.version, caller.userId);
    if (!published) {
      const message = `This lesson has no version ${body.version}`;
      throw badRequest(message, [{ field: 'body.version', message }]);
    }
    audit.resourceIds.lessonVersionId = published.versionId;
    return json({ moduleId: module.id, version: body.version, publishedAt: published.publishedAt.toISOString() });
  },
});
