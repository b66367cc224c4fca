// Students: accounts holding the `student` role, with their enrollments. The list is keyset-paged and
// bounded, one statement per page (enrollments aggregated by the database), names and emails
// decrypted in-process in one pass; email lookups and uniqueness go through the blind index; names
// are searched by prefix through HMAC tokens; deactivation replaces the hard delete.
//
// Sorting by last name: last names are ciphertext and the schema deliberately has no sort key
// derived from them (it would leak their order and initials). `sort=lastName` therefore sorts
// in-process, and only a filtered set of at most LAST_NAME_SORT_MAX students (narrowed by name,
// programme, status, …): the names of that set are decrypted for every page, and a larger set is a
// 400 that says how to narrow it. The cursor of that order holds names, so it is encrypted.
//
// Searching by name or email puts personal data in the URL of a GET; POST /api/students/search
// takes the same filters in its body for clients that must keep them out of URLs and logs.
import { z } from 'zod';
import { assertOwnerOrRoles, type Caller, STUDENT_RECORD_ROLES } from '../lib/access';
import {
  decrypt,
  decryptRows,
  emailBlindIndex,
  encrypt,
  nameSearchToken,
  nameSearchTokens,
  normalizeName,
} from '../lib/crypto';
import { type AnySql, BYTEA_ARRAY, type TransactionSql } from '../lib/db';
import { endpoint } from '../lib/endpoint';
import { badRequest, conflict, forbidden, notFound } from '../lib/errors';
import { created, json } from '../lib/http';
import { cursorSchema, limitSchema, nextLink, type Page, pageOf } from '../lib/pagination';
import { checkPasswordPolicy } from '../lib/password-policy';
import { PASSWORD_MAX_LENGTH } from '../lib/passwords';
import { revokeAllForUser } from '../lib/sessions';
import {
  ENROLLMENT_STATUSES,
  findStudent,
  type RecordScope,
  recordScopeOf,
  STUDENT_MANAGER_ROLES,
  type StudentFilter,
  type StudentView,
  studentNameCandidatesQuery,
  studentPageQuery,
  studentsByIdsQuery,
  toStudentViews,
} from '../lib/students';
import { singleLine } from '../lib/text';
import { EmailAddress, EmailLookup, insertUser, PersonName, USER_STATUSES } from '../lib/users';

/** Largest filtered set `sort=lastName` sorts in-process (its names are decrypted for every page). */
export const LAST_NAME_SORT_MAX = 1000;
const NAME_WORDS_MAX = 4;
const NAME_WORD_MIN = 2;
const ALL: RecordScope = { kind: 'all' };

// ---------------------------------------------------------------------------------------------------
// Listing and searching
// ---------------------------------------------------------------------------------------------------

function nameWords(name: string): string[] {
  return normalizeName(name).split(' ').filter(Boolean);
}

/** Words this long have a search token; shorter ones (an initial) only filter the decrypted page. */
const isSearchable = (word: string) => [...word].length >= NAME_WORD_MIN;

const listShape = {
  limit: limitSchema,
  cursor: z.string().max(1024).optional(),
  sort: z.enum(['created', 'lastName']).default('created'),
  status: z.enum(USER_STATUSES).optional(),
  programId: z.uuid().optional(),
  enrollmentStatus: z.enum(ENROLLMENT_STATUSES).optional(),
  email: EmailLookup.optional(),
  name: singleLine(100)
    .refine((name) => {
      const words = nameWords(name);
      return words.length <= NAME_WORDS_MAX && words.some(isSearchable);
    }, `Type up to ${NAME_WORDS_MAX} name beginnings, one of at least ${NAME_WORD_MIN} letters`)
    .optional(),
};
const StudentListQuery = z.object(listShape);
const StudentSearchBody = z.strictObject(listShape);
type StudentListInput = z.infer<typeof StudentListQuery>;

const CREATED_KEY = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
const createdCursor = cursorSchema(z.tuple([z.string().regex(CREATED_KEY), z.uuid()]));
const lastNameKey = z.tuple([z.string(), z.string(), z.uuid()]);
type LastNameKey = z.infer<typeof lastNameKey>;
const CURSOR_FIELD = 'students.cursor';

const invalidCursor = (where: string) =>
  badRequest('Check the cursor of your request', [
    { field: `${where}.cursor`, message: 'Not a cursor this list gave out' },
  ]);

function parseCreatedCursor(raw: string | undefined, where: string): [string, string] | undefined {
  const parsed = createdCursor.safeParse(raw);
  if (!parsed.success) throw invalidCursor(where);
  return parsed.data;
}

// The last-name cursor holds (normalized) names: encrypted, so no name reaches a URL or a log.
function encodeLastNameCursor(key: LastNameKey): string {
  return encrypt(JSON.stringify(key), CURSOR_FIELD);
}

function parseLastNameCursor(raw: string | undefined, where: string): LastNameKey | undefined {
  if (raw === undefined) return undefined;
  try {
    const parsed = lastNameKey.safeParse(JSON.parse(decrypt(raw, CURSOR_FIELD)));
    if (parsed.success) return parsed.data;
  } catch {
    // falls through
  }
  throw invalidCursor(where);
}

const compareKeys = (a: LastNameKey, b: LastNameKey): number => {
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return (a[i] as string) < (b[i] as string) ? -1 : 1;
  }
  return 0;
};

/**
 * A prefix token covers the first NAME_PREFIX_MAX characters of a word, so longer searches (and the
 * rare truncated-HMAC collision) are settled here, on the decrypted page: every typed word must
 * begin one of the student's name words.
 */
function nameMatcher(words: readonly string[]) {
  return (firstName: string, lastName: string): boolean => {
    if (words.length === 0) return true;
    const own = [...nameWords(firstName), ...nameWords(lastName)];
    return words.every((word) => own.some((candidate) => candidate.startsWith(word)));
  };
}

async function pageByCreation(
  sql: AnySql,
  input: StudentListInput,
  filter: StudentFilter,
  scope: RecordScope,
  matches: ReturnType<typeof nameMatcher>,
  where: string,
): Promise<Page<StudentView>> {
  const after = parseCreatedCursor(input.cursor, where);
  const rows = await studentPageQuery(sql, filter, scope, after, input.limit);
  const views = toStudentViews(rows);
  const page = pageOf(
    views.map((view, i) => ({ view, key: rows[i]?.created_key as string })),
    input.limit,
    (row) => [row.key, row.view.id],
    (row) => row.view,
  );
  // A page may hold fewer than `limit` students when the name check removes some; `next` still
  // continues after the last row read.
  return { ...page, items: page.items.filter((s) => matches(s.firstName, s.lastName)) };
}

async function pageByLastName(
  sql: AnySql,
  input: StudentListInput,
  filter: StudentFilter,
  scope: RecordScope,
  matches: ReturnType<typeof nameMatcher>,
  where: string,
): Promise<Page<StudentView>> {
  const after = parseLastNameCursor(input.cursor, where);
  const candidates = await studentNameCandidatesQuery(sql, filter, scope, LAST_NAME_SORT_MAX);
  if (candidates.length > LAST_NAME_SORT_MAX) {
    const message = `Sorting by last name works on at most ${LAST_NAME_SORT_MAX} students: narrow the list by name, programId, enrollmentStatus or status, or sort by creation`;
    throw badRequest(message, [{ field: `${where}.sort`, message }]);
  }
  const ordered = decryptRows(candidates, {
    first_name_ciphertext: 'users.first_name',
    last_name_ciphertext: 'users.last_name',
  })
    .filter((row) => matches(row.first_name_ciphertext, row.last_name_ciphertext))
    .map(
      (row): LastNameKey => [normalizeName(row.last_name_ciphertext), normalizeName(row.first_name_ciphertext), row.id],
    )
    .sort(compareKeys)
    .filter((key) => !after || compareKeys(key, after) > 0);
  const served = ordered.slice(0, input.limit);
  const rows = served.length
    ? await studentsByIdsQuery(
        sql,
        served.map((key) => key[2]),
        filter,
        scope,
      )
    : [];
  const byId = new Map(toStudentViews(rows).map((view) => [view.id, view]));
  const last = served[served.length - 1];
  return {
    // A student changed between the two statements so that they left the set is simply not served.
    items: served.map((key) => byId.get(key[2])).filter((view): view is StudentView => view !== undefined),
    next: ordered.length > input.limit && last ? encodeLastNameCursor(last) : null,
  };
}

async function listStudents(sql: AnySql, input: StudentListInput, caller: Caller, where: 'query' | 'body') {
  const words = input.name ? nameWords(input.name) : [];
  const filter: StudentFilter = {
    status: input.status,
    programId: input.programId,
    enrollmentStatus: input.enrollmentStatus,
    emailBlindIndex: input.email ? emailBlindIndex(input.email) : undefined,
    nameTokens: words.filter(isSearchable).map((word) => nameSearchToken(word) as Buffer),
  };
  const scope = recordScopeOf(caller);
  const matches = nameMatcher(words);
  return input.sort === 'lastName'
    ? pageByLastName(sql, input, filter, scope, matches, where)
    : pageByCreation(sql, input, filter, scope, matches, where);
}

endpoint({
  name: 'students-list',
  methods: ['GET'],
  route: 'students',
  access: STUDENT_RECORD_ROLES,
  phi: true,
  query: StudentListQuery,
  handler: async ({ sql, query, caller, request }) => {
    const page = await listStudents(sql, query, caller, 'query');
    return json(page, 200, nextLink(request.url, page.next));
  },
});

endpoint({
  name: 'students-search',
  methods: ['POST'],
  route: 'students/search',
  access: STUDENT_RECORD_ROLES,
  phi: true,
  body: StudentSearchBody,
  handler: async ({ sql, body, caller }) => json(await listStudents(sql, body, caller, 'body')),
});

// ---------------------------------------------------------------------------------------------------
// One student
// ---------------------------------------------------------------------------------------------------

const StudentParams = z.object({ id: z.uuid() });

endpoint({
  name: 'students-get',
  methods: ['GET'],
  route: 'students/{id}',
  access: [...STUDENT_RECORD_ROLES, 'student'],
  phi: true,
  params: StudentParams,
  handler: async ({ sql, params, caller }) => {
    const who = caller;
    assertOwnerOrRoles(who, params.id, STUDENT_RECORD_ROLES);
    // The scope also narrows an instructor to the students of the programmes they teach.
    const student = await findStudent(sql, params.id, recordScopeOf(who));
    if (!student) throw notFound('No such student');
    return json(student);
  },
});

// ---------------------------------------------------------------------------------------------------
// Creating, changing, deactivating
// ---------------------------------------------------------------------------------------------------

const NewStudent = z.strictObject({
  email: EmailAddress,
  firstName: PersonName,
  lastName: PersonName,
  /** Optional: without one the account is `pending` until the student activates it. */
  password: z.string().max(PASSWORD_MAX_LENGTH).optional(),
});

endpoint({
  name: 'students-create',
  methods: ['POST'],
  route: 'students',
  access: STUDENT_MANAGER_ROLES,
  phi: true,
  body: NewStudent,
  handler: async ({ sql, body, caller, audit }) => {
    if (body.password !== undefined) {
      const problem = checkPasswordPolicy(body.password, { email: body.email });
      if (problem) throw badRequest('Choose another password', [{ field: 'body.password', message: problem }]);
    }
    // Uniqueness is the blind index's unique constraint: of two concurrent creations, one gets 409.
    const { id } = await insertUser(sql, {
      email: body.email,
      firstName: body.firstName,
      lastName: body.lastName,
      password: body.password ?? null,
      roles: ['student'],
      status: body.password === undefined ? 'pending' : 'active',
      grantedBy: caller.userId,
    });
    audit.resourceIds.id = id;
    return created(await findStudent(sql, id, ALL), `/api/students/${id}`);
  },
});

/**
 * Locks a student account for a change. Only accounts whose sole role is `student` are managed
 * here: otherwise a registrar could change the email of an administrator who also takes a course.
 */
async function lockManagedStudent(tx: TransactionSql, id: string) {
  const [row] = await tx<{ first_name_ciphertext: string; last_name_ciphertext: string; other_roles: string[] }[]>`
    select u.first_name_ciphertext, u.last_name_ciphertext,
           array(select r.role_name from user_roles r where r.user_id = u.id and r.role_name <> 'student') as other_roles
      from users u
     where u.id = ${id}
       and exists (select 1 from user_roles r where r.user_id = u.id and r.role_name = 'student')
       for update of u`;
  if (!row) throw notFound('No such student');
  if (row.other_roles.length > 0) {
    throw forbidden('This account also holds staff roles; an administrator manages it through /api/users');
  }
  return row;
}

const StudentChange = z
  .strictObject({
    email: EmailAddress.optional(),
    firstName: PersonName.optional(),
    lastName: PersonName.optional(),
    status: z
      .enum(['active', 'locked', 'pending'], {
        error: 'Use active, locked or pending; to deactivate, POST /api/students/{id}/deactivate',
      })
      .optional(),
  })
  .refine((change) => Object.keys(change).length > 0, 'Send at least one of email, firstName, lastName, status');

endpoint({
  name: 'students-update',
  methods: ['PATCH'],
  route: 'students/{id}',
  access: STUDENT_MANAGER_ROLES,
  phi: true,
  params: StudentParams,
  body: StudentChange,
  handler: async ({ sql, params, body }) => {
    const current = await lockManagedStudent(sql, params.id);
    // The search tokens cover both names, so changing one needs the other in plaintext.
    const names =
      body.firstName !== undefined || body.lastName !== undefined
        ? {
            first: body.firstName ?? decrypt(current.first_name_ciphertext, 'users.first_name'),
            last: body.lastName ?? decrypt(current.last_name_ciphertext, 'users.last_name'),
          }
        : null;
    const reactivated = body.status === 'active';
    try {
      await sql`
        update users set
          email_ciphertext = coalesce(${body.email ? encrypt(body.email, 'users.email') : null}::text, email_ciphertext),
          email_blind_index = coalesce(${body.email ? emailBlindIndex(body.email) : null}::bytea, email_blind_index),
          first_name_ciphertext = coalesce(${body.firstName ? encrypt(body.firstName, 'users.first_name') : null}::text,
                                           first_name_ciphertext),
          last_name_ciphertext = coalesce(${body.lastName ? encrypt(body.lastName, 'users.last_name') : null}::text,
                                          last_name_ciphertext),
          name_search_tokens = coalesce(${names ? sql.array(nameSearchTokens(names.first, names.last), BYTEA_ARRAY) : null}::bytea[],
                                        name_search_tokens),
          status = coalesce(${body.status ?? null}::text, status),
          deactivated_at = case when ${reactivated} then null else deactivated_at end,
          deactivated_by = case when ${reactivated} then null else deactivated_by end
        where id = ${params.id}`;
    } catch (error) {
      // The same address (same blind index) on this very account is no conflict (old §6 item 27).
      if ((error as { code?: string }).code === '23505') {
        throw conflict('An account with this email address already exists');
      }
      throw error;
    }
    // A locked or pending account keeps no session.
    if (body.status && body.status !== 'active') await revokeAllForUser(sql, params.id, 'admin_revoked');
    return json(await findStudent(sql, params.id, ALL));
  },
});

endpoint({
  name: 'students-deactivate',
  methods: ['POST'],
  route: 'students/{id}/deactivate',
  access: STUDENT_MANAGER_ROLES,
  phi: true,
  params: StudentParams,
  handler: async ({ sql, params, caller }) => {
    // No hard delete: the account stays with its records; it can no longer sign in or refresh.
    // Deactivating twice keeps the first deactivation's who and when.
    await lockManagedStudent(sql, params.id);
    await sql`
      update users set status = 'inactive',
                       deactivated_at = coalesce(deactivated_at, now()),
                       deactivated_by = coalesce(deactivated_by, ${caller.userId}::uuid)
       where id = ${params.id}`;
    await revokeAllForUser(sql, params.id, 'user_deactivated');
    return json(await findStudent(sql, params.id, ALL));
  },
});
