// Lessons: one Markdown lesson per module, every save a new version (author, time), the version students
// read published explicitly. SQL by intent, the rules of who reaches a module's lesson, and the views.
// Who: a programme's content is read by admin and staff, the programme's instructors and its students
// with an active or on-hold enrollment; it is written by admin, staff and the programme's instructors
// (lib/access.ts programContentReadableSql, programReachedSql). A module out of reach is a 404.
import type postgres from 'postgres';
import {
  type Caller,
  programContentReadableSql,
  programReachedSql,
  type RecordReach,
  type RecordScope,
  type Role,
  scopeOf,
} from './access';
import type { AnySql } from './db';
import { declareConstraints } from './errors';
import { findH5pActivitiesByKey, type LessonActivity, lessonEmbedHtml, toLessonActivity } from './h5p';
import { embeddedActivities, RENDERER_VERSION, renderLesson, resolvePlaceholders } from './lesson-html';
import { keyset } from './pagination';

/** Who reads and writes every programme's content; instructors reach the programmes they teach. */
export const CONTENT_REACH: RecordReach = { all: ['admin', 'staff'], taught: true };
/** Who may write content at all (the door; the scope then narrows instructors to their programmes). */
export const CONTENT_EDITORS: readonly Role[] = [...CONTENT_REACH.all, 'instructor'];
/** Who may read published content at all: the editors and students (their programmes). */
export const CONTENT_READERS: readonly Role[] = [...CONTENT_EDITORS, 'student'];

export const contentScope = (caller: Caller): RecordScope => scopeOf(caller, CONTENT_REACH);

/** How long a lesson's Markdown may be (characters): a long chapter is some 60,000. */
export const LESSON_MARKDOWN_MAX = 200_000;

declareConstraints({
  lesson_versions_module_version_key: {
    status: 409,
    field: 'markdown',
    message: 'Another version of this lesson was saved at the same moment; reload and save again',
  },
});

export interface ContentModule {
  id: string;
  programId: string;
}

/** The module, when the scope may read (`read`) or write (`write`) its programme's content; else null. */
export async function reachableModule(
  sql: AnySql,
  scope: RecordScope,
  moduleId: string,
  mode: 'read' | 'write',
): Promise<ContentModule | null> {
  const reach = (program: postgres.Fragment) =>
    mode === 'read' ? programContentReadableSql(sql, scope, program) : programReachedSql(sql, scope, program);
  const [row] = await sql<{ id: string; program_id: string }[]>`
    select m.id, m.program_id from modules m where m.id = ${moduleId} and ${reach(sql`m.program_id`)}`;
  return row ? { id: row.id, programId: row.program_id } : null;
}

interface VersionRow {
  id: string;
  module_id: string;
  version: number;
  title: string;
  markdown: string;
  html: string;
  renderer_version: number;
  created_by: string;
  created_at: Date;
  published: boolean;
}

const versionColumns = (sql: AnySql) => sql`
  lv.id, lv.module_id, lv.version, lv.title, lv.markdown, lv.html, lv.renderer_version, lv.created_by,
  lv.created_at, exists (select 1 from lesson_publications lp where lp.version_id = lv.id) as published`;

/** The HTML of a version as this renderer makes it: the stored one unless an older renderer made it. */
const htmlOf = (row: Pick<VersionRow, 'html' | 'renderer_version' | 'markdown' | 'module_id'>) =>
  row.renderer_version === RENDERER_VERSION ? row.html : renderLesson(row.markdown, row.module_id);

/** Saves a new version of a module's lesson (the next number), rendered and sanitised once, now. */
export async function saveLessonVersion(
  sql: AnySql,
  moduleId: string,
  lesson: { title: string; markdown: string },
  authorId: string,
): Promise<VersionRow> {
  const html = renderLesson(lesson.markdown, moduleId);
  const [row] = await sql<VersionRow[]>`
    insert into lesson_versions as lv (module_id, version, title, markdown, html, renderer_version, created_by)
    values (${moduleId},
            coalesce((select max(version) from lesson_versions where module_id = ${moduleId}), 0) + 1,
            ${lesson.title}, ${lesson.markdown}, ${html}, ${RENDERER_VERSION}, ${authorId})
    returning ${versionColumns(sql)}`;
  return row as VersionRow;
}

export const VERSION_ORDER = keyset([['lv.version', 'bigint']], 'desc');

/** A page of a module's versions, newest first (with `limit + 1` rows: see pageOf). */
export function lessonVersionPage(sql: AnySql, moduleId: string, after: readonly [string] | undefined, limit: number) {
  return sql<(SummaryRow & { page_key: string[] })[]>`
    select lv.version, lv.title, lv.created_by, lv.created_at,
           exists (select 1 from lesson_publications lp where lp.version_id = lv.id) as published,
           ${VERSION_ORDER.key(sql)}
      from lesson_versions lv
     where lv.module_id = ${moduleId} and ${VERSION_ORDER.after(sql, after)}
     ${VERSION_ORDER.orderBy(sql)}
     limit ${limit + 1}`;
}

export async function findLessonVersion(sql: AnySql, moduleId: string, version: number): Promise<VersionRow | null> {
  const [row] = await sql<VersionRow[]>`
    select ${versionColumns(sql)} from lesson_versions lv where lv.module_id = ${moduleId} and lv.version = ${version}`;
  return row ?? null;
}

/** Makes `version` the one students read; null when the module has no such version. */
export async function publishLessonVersion(
  sql: AnySql,
  moduleId: string,
  version: number,
  publisherId: string,
): Promise<{ versionId: string; publishedAt: Date } | null> {
  const [row] = await sql<{ version_id: string; published_at: Date }[]>`
    insert into lesson_publications (module_id, version_id, published_by)
    select lv.module_id, lv.id, ${publisherId} from lesson_versions lv
     where lv.module_id = ${moduleId} and lv.version = ${version}
    on conflict (module_id) do update
       set version_id = excluded.version_id, published_by = excluded.published_by, published_at = now()
    returning version_id, published_at`;
  return row ? { versionId: row.version_id, publishedAt: row.published_at } : null;
}

interface PublishedRow {
  module_id: string;
  version: number;
  title: string;
  markdown: string;
  html: string;
  renderer_version: number;
  published_at: Date;
  module_title: string;
  program_id: string;
}

/**
 * The published lesson of a module the scope may read, in one statement; null when none or out of reach.
 * `readerId`: who reads it (its activities' player addresses are theirs).
 */
export async function findPublishedLesson(sql: AnySql, scope: RecordScope, moduleId: string, readerId: string) {
  const [row] = await sql<PublishedRow[]>`
    select lv.module_id, lv.version, lv.title, lv.markdown, lv.html, lv.renderer_version, lp.published_at,
           m.title as module_title, m.program_id
      from lesson_publications lp
      join lesson_versions lv on lv.id = lp.version_id
      join modules m on m.id = lp.module_id
     where lp.module_id = ${moduleId} and ${programContentReadableSql(sql, scope, sql`m.program_id`)}`;
  if (!row) return null;
  const { html, activities } = await withActivities(sql, row.module_id, htmlOf(row), readerId);
  return {
    moduleId: row.module_id,
    programId: row.program_id,
    moduleTitle: row.module_title,
    title: row.title,
    version: row.version,
    publishedAt: row.published_at.toISOString(),
    html,
    activities,
  };
}

/**
 * The lesson's H5P placeholders resolved against its own module's current activities (a key names an
 * activity of this module, never another's: whoever reads the lesson may open those), each embedded, or a
 * note where the module has none of that key; and the list of them in order of first appearance.
 */
async function withActivities(
  sql: AnySql,
  moduleId: string,
  html: string,
  readerId: string,
): Promise<{ html: string; activities: LessonActivity[] }> {
  const keys = embeddedActivities(html);
  if (keys.length === 0) return { html, activities: [] };
  const rows = await findH5pActivitiesByKey(sql, moduleId, keys);
  const byKey = new Map(keys.map((key) => [key, toLessonActivity(key, rows.get(key), readerId)]));
  return {
    html: resolvePlaceholders(html, (key, inline) => lessonEmbedHtml(byKey.get(key) as LessonActivity, inline)),
    activities: [...byKey.values()],
  };
}

/** A version as editors see it: its Markdown, its HTML, who saved it and when, whether it is published. */
export const toVersionView = (row: VersionRow) => ({
  moduleId: row.module_id,
  version: row.version,
  title: row.title,
  markdown: row.markdown,
  html: htmlOf(row),
  createdBy: row.created_by,
  createdAt: row.created_at.toISOString(),
  published: row.published,
});

type SummaryRow = Pick<VersionRow, 'version' | 'title' | 'created_by' | 'created_at' | 'published'>;

/** A version in a list: without its text. */
export const toVersionSummary = (row: SummaryRow) => ({
  version: row.version,
  title: row.title,
  createdBy: row.created_by,
  createdAt: row.created_at.toISOString(),
  published: row.published,
});
