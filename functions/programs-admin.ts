// Programme and module administration (the public, read-only catalogue is functions/programs.ts).
//
// Who may change what:
// * admin and staff create programmes and modules, change any field, reorder modules;
// * an instructor updates the content fields of what they teach (PROGRAM_EDIT_REACH below): a
//   programme's description, a module's title and description — nothing that changes requirements;
// * only an admin retires a programme. There is no delete: enrollments, progress, transcripts and
//   credentials point at programmes and modules (ON DELETE RESTRICT), and a retired programme's
//   enrollments simply continue.
//
// `total_clock_hours` is derived, never sent by a client: every write that adds a module or changes a
// module's clock hours recomputes it in the same transaction, under a row lock on the programme, so
// two concurrent module writes cannot leave a stale sum (the lock also serialises position numbers).

import { z } from 'zod';
import { type Caller, type RecordReach, type Role, reachesProgram, scopeOf } from '../lib/access';
import { type AnySql, type TransactionSql, UUID_ARRAY } from '../lib/db';
import { endpoint } from '../lib/endpoint';
import { badRequest, conflict, constraintProblem, forbidden, notFound } from '../lib/errors';
import { created, json } from '../lib/http';
import { limitSchema, nextLink, pageOf } from '../lib/pagination';
import {
  type ManagedProgramRow,
  managedProgramPageQuery,
  PROGRAM_CODE_TAKEN,
  PROGRAM_ORDER,
  toManagedProgramView,
} from '../lib/programs';
import { multiLine, singleLine } from '../lib/text';

/** Roles that manage the structure of programmes (any field, any programme). */
const MANAGERS: readonly Role[] = ['admin', 'staff'];
/** Who edits which programme: managers any, an instructor those they teach (content fields only). */
const PROGRAM_EDIT_REACH: RecordReach = { all: MANAGERS, taught: true };
/**
 * Who reads the management view (retired programmes, open-enrollment counts): those who manage,
 * teach or keep the records of programmes. Finance and admissions use the public catalogue
 * (decision 5 of docs/access-policy.md).
 */
const MANAGEMENT_VIEW_READERS: readonly Role[] = ['admin', 'staff', 'instructor', 'registrar'];
const MAX_MODULES_PER_PROGRAM = 200;

// ---------------------------------------------------------------------------------------------------
// Shapes
// ---------------------------------------------------------------------------------------------------

const code = singleLine(32, {
  pattern: { regex: /^[A-Za-z0-9][A-Za-z0-9._-]*$/, message: 'Letters, digits, dot, dash and underscore only' },
});
const label = (max: number) => singleLine(max);
const description = multiLine(4000, { min: 0 }).nullable();
const deliveryType = z.enum(['online', 'hybrid', 'in_person']);
const clockHours = z.number().int().min(0).max(10_000);

const NewModule = z.strictObject({
  code,
  title: label(200),
  description: description.optional(),
  deliveryType,
  clockHours,
  requiresInPerson: z.boolean().default(false),
});

const NewProgram = z.strictObject({
  code,
  name: label(200),
  credentialLevel: label(100),
  description: description.optional(),
  modules: z
    .array(NewModule)
    .max(MAX_MODULES_PER_PROGRAM)
    .default([])
    .refine((modules) => new Set(modules.map((m) => m.code)).size === modules.length, {
      message: 'Module codes must be unique within a programme',
    }),
});

const ProgramPatch = z
  .strictObject({ name: label(200), credentialLevel: label(100), description })
  .partial()
  .refine((patch) => Object.keys(patch).length > 0, { message: 'Nothing to change' });

const ModuleCreate = NewModule.extend({ position: z.number().int().min(1).optional() });

const ModulePatch = z
  .strictObject({
    code,
    title: label(200),
    description,
    deliveryType,
    clockHours,
    requiresInPerson: z.boolean(),
  })
  .partial()
  .refine((patch) => Object.keys(patch).length > 0, { message: 'Nothing to change' });

/** Fields an instructor may change: content, not requirements. */
const INSTRUCTOR_PROGRAM_FIELDS = new Set(['description']);
const INSTRUCTOR_MODULE_FIELDS = new Set(['title', 'description']);

const ModuleOrder = z.strictObject({
  moduleIds: z
    .array(z.uuid())
    .min(1)
    .max(MAX_MODULES_PER_PROGRAM)
    .refine((ids) => new Set(ids).size === ids.length, { message: 'A module appears twice' }),
});

const ProgramParams = z.object({ id: z.uuid() });
const ModuleParams = z.object({ id: z.uuid(), moduleId: z.uuid() });

const ListQuery = z.object({
  limit: limitSchema,
  cursor: PROGRAM_ORDER.cursor,
  status: z.enum(['active', 'retired']).optional(),
});

interface ModuleRow {
  id: string;
  code: string;
  title: string;
  description: string | null;
  delivery_type: string;
  clock_hours: number;
  requires_in_person: boolean;
  position: number;
}

const toModule = (row: ModuleRow) => ({
  id: row.id,
  code: row.code,
  title: row.title,
  description: row.description,
  deliveryType: row.delivery_type,
  clockHours: row.clock_hours,
  requiresInPerson: row.requires_in_person,
  position: row.position,
});

// ---------------------------------------------------------------------------------------------------
// Shared queries
// ---------------------------------------------------------------------------------------------------

type Sql = AnySql;

/** Locks the programme row for a structural change; 404 when there is none. */
async function lockProgram(tx: TransactionSql, id: string): Promise<ManagedProgramRow> {
  const [row] = await tx<ManagedProgramRow[]>`select * from programs where id = ${id} for update`;
  if (!row) throw notFound('No such programme');
  return row;
}

/** Recomputes the derived total from the modules (call with the programme row locked). */
async function recomputeTotal(tx: TransactionSql, programId: string): Promise<ManagedProgramRow> {
  const [row] = await tx<ManagedProgramRow[]>`
    update programs
       set total_clock_hours = (select coalesce(sum(clock_hours), 0) from modules where program_id = ${programId})
     where id = ${programId}
    returning *`;
  return row as ManagedProgramRow;
}

async function modulesOf(sql: Sql, programId: string): Promise<ModuleRow[]> {
  return sql<ModuleRow[]>`select * from modules where program_id = ${programId} order by position`;
}

/**
 * Managers change anything; an instructor changes only `allowed` fields of a programme they teach.
 * Checked before any write so a refused request changes nothing.
 */
async function assertMayEdit(
  sql: Sql,
  caller: Caller,
  programId: string,
  fields: readonly string[],
  allowed: ReadonlySet<string>,
): Promise<void> {
  const scope = scopeOf(caller, PROGRAM_EDIT_REACH);
  if (scope.kind === 'all') return;
  const refused = fields.filter((field) => !allowed.has(field));
  if (refused.length > 0) {
    throw forbidden(`Instructors may change only ${[...allowed].join(', ')} (not ${refused.join(', ')})`);
  }
  if (!(await reachesProgram(sql, scope, programId))) throw forbidden('You do not teach this programme');
}

function assertActive(program: ManagedProgramRow): void {
  if (program.status === 'retired') throw conflict('The programme is retired: its module structure is frozen');
}

// ---------------------------------------------------------------------------------------------------
// Programmes
// ---------------------------------------------------------------------------------------------------

endpoint({
  name: 'programs-manage-list',
  methods: ['GET'],
  // Not `admin/...`: Azure Functions reserves routes that start with "admin" for its own API.
  route: 'manage/programs',
  access: MANAGEMENT_VIEW_READERS,
  cache: 'private',
  query: ListQuery,
  handler: async ({ sql, query, request }) => {
    const rows = await managedProgramPageQuery(sql, query, query.cursor, query.limit);
    const page = pageOf(rows, query.limit, (read) =>
      read.map((row) => ({
        ...toManagedProgramView(row),
        moduleCount: row.module_count,
        openEnrollments: row.open_enrollments,
      })),
    );
    return json(page, 200, nextLink(request.url, page.next));
  },
});

endpoint({
  name: 'programs-manage-get',
  methods: ['GET'],
  route: 'manage/programs/{id}',
  access: MANAGEMENT_VIEW_READERS,
  cache: 'private',
  params: ProgramParams,
  handler: async ({ sql, params }) => {
    const [row] = await sql<(ManagedProgramRow & { modules: ModuleRow[] })[]>`
      select p.*,
             coalesce((select json_agg(m order by m.position) from modules m where m.program_id = p.id), '[]') as modules
        from programs p
       where p.id = ${params.id}`;
    if (!row) throw notFound('No such programme');
    return json({ ...toManagedProgramView(row), modules: row.modules.map(toModule) });
  },
});

endpoint({
  name: 'programs-manage-create',
  methods: ['POST'],
  route: 'programs',
  access: MANAGERS,
  body: NewProgram,
  handler: async ({ sql, body, audit }) => {
    const total = body.modules.reduce((sum, module) => sum + module.clockHours, 0);
    // One statement: the programme and its modules, positions in the order given.
    const [row] = await sql<(ManagedProgramRow & { modules: ModuleRow[] })[]>`
      with program as (
        insert into programs (code, name, credential_level, total_clock_hours, description)
        values (${body.code}, ${body.name}, ${body.credentialLevel}, ${total}, ${body.description ?? null})
        on conflict (code) do nothing
        returning *),
      inserted as (
        insert into modules (program_id, code, title, description, delivery_type, clock_hours, requires_in_person,
                             position)
        select program.id, m.code, m.title, m.description, m."deliveryType", m."clockHours", m."requiresInPerson",
               m.position
          from program,
               jsonb_to_recordset(${sql.json(body.modules.map((m, i) => ({ ...m, position: i + 1 })))}::jsonb)
                 as m(code text, title text, description text, "deliveryType" text, "clockHours" int,
                      "requiresInPerson" boolean, position int)
        returning *)
      select program.*, coalesce((select json_agg(inserted order by inserted.position) from inserted), '[]') as modules
        from program`;
    if (!row) throw constraintProblem(PROGRAM_CODE_TAKEN, body);
    audit.resourceIds.programId = row.id;
    return created(
      { ...toManagedProgramView(row), modules: row.modules.map(toModule) },
      `/api/manage/programs/${row.id}`,
    );
  },
});

endpoint({
  name: 'programs-manage-update',
  methods: ['PATCH'],
  route: 'programs/{id}',
  access: [...MANAGERS, 'instructor'],
  params: ProgramParams,
  body: ProgramPatch,
  handler: async ({ sql, params, body, caller }) => {
    await assertMayEdit(sql, caller, params.id, Object.keys(body), INSTRUCTOR_PROGRAM_FIELDS);
    const [row] = await sql<ManagedProgramRow[]>`
      update programs
         set name = coalesce(${body.name ?? null}, name),
             credential_level = coalesce(${body.credentialLevel ?? null}, credential_level),
             description = ${body.description === undefined ? sql`description` : body.description}
       where id = ${params.id}
      returning *`;
    if (!row) throw notFound('No such programme');
    return json(toManagedProgramView(row));
  },
});

endpoint({
  name: 'programs-manage-retire',
  methods: ['POST'],
  route: 'programs/{id}/retire',
  access: ['admin'],
  params: ProgramParams,
  handler: async ({ sql, params }) => {
    // Idempotent: retiring a retired programme answers its current state. Open enrollments continue;
    // the count tells the administrator how many.
    const [row] = await sql<(ManagedProgramRow & { open_enrollments: number })[]>`
      with retired as (
        update programs set status = 'retired' where id = ${params.id} and status = 'active' returning *)
      select p.*,
             (select count(*)::int from enrollments e
               where e.program_id = p.id and e.status in ('pending', 'active', 'on_hold')) as open_enrollments
        from (select * from retired
              union all
              select * from programs where id = ${params.id} and not exists (select 1 from retired)) p`;
    if (!row) throw notFound('No such programme');
    return json({ ...toManagedProgramView(row), openEnrollments: row.open_enrollments });
  },
});

// ---------------------------------------------------------------------------------------------------
// Modules
// ---------------------------------------------------------------------------------------------------

/** Inserts a module at its position (default: last), shifting the ones after it. */
async function addModule(tx: TransactionSql, programId: string, body: z.infer<typeof ModuleCreate>) {
  const program = await lockProgram(tx, programId);
  assertActive(program);
  const [counted] = await tx<{ count: number }[]>`
    select count(*)::int as count from modules where program_id = ${program.id}`;
  const count = counted?.count ?? 0;
  if (count >= MAX_MODULES_PER_PROGRAM) throw conflict(`A programme has at most ${MAX_MODULES_PER_PROGRAM} modules`);
  const position = body.position ?? count + 1;
  if (position > count + 1) {
    throw badRequest('The position is past the end', [
      { field: 'body.position', message: `At most ${count + 1} for this programme` },
    ]);
  }
  // Make room; the (program_id, position) constraint is deferred to commit, so the shift cannot
  // collide with itself half way.
  await tx`update modules set position = position + 1 where program_id = ${program.id} and position >= ${position}`;
  const [module] = await tx<ModuleRow[]>`
    insert into modules (program_id, code, title, description, delivery_type, clock_hours, requires_in_person,
                         position)
    values (${program.id}, ${body.code}, ${body.title}, ${body.description ?? null}, ${body.deliveryType},
            ${body.clockHours}, ${body.requiresInPerson}, ${position})
    returning *`;
  const updated = await recomputeTotal(tx, program.id);
  return { module: module as ModuleRow, program: updated };
}

endpoint({
  name: 'programs-manage-module-create',
  methods: ['POST'],
  route: 'programs/{id}/modules',
  access: MANAGERS,
  params: ProgramParams,
  body: ModuleCreate,
  handler: async ({ sql, params, body, audit }) => {
    const result = await addModule(sql, params.id, body);
    audit.resourceIds.moduleId = result.module.id;
    return created(
      { ...toModule(result.module), programTotalClockHours: result.program.total_clock_hours },
      `/api/manage/programs/${params.id}`,
    );
  },
});

/** Changes a module; structural fields only while the programme is active. */
async function changeModule(
  tx: TransactionSql,
  caller: Caller,
  params: z.infer<typeof ModuleParams>,
  body: z.infer<typeof ModulePatch>,
) {
  await assertMayEdit(tx, caller, params.id, Object.keys(body), INSTRUCTOR_MODULE_FIELDS);
  const program = await lockProgram(tx, params.id);
  const structural = ['code', 'deliveryType', 'clockHours', 'requiresInPerson'].some((field) => field in body);
  if (structural) assertActive(program);
  const [module] = await tx<ModuleRow[]>`
    update modules
       set code = coalesce(${body.code ?? null}, code),
           title = coalesce(${body.title ?? null}, title),
           description = ${body.description === undefined ? tx`description` : body.description},
           delivery_type = coalesce(${body.deliveryType ?? null}, delivery_type),
           clock_hours = coalesce(${body.clockHours ?? null}::int, clock_hours),
           requires_in_person = coalesce(${body.requiresInPerson ?? null}::boolean, requires_in_person)
     where id = ${params.moduleId} and program_id = ${params.id}
    returning *`;
  if (!module) throw notFound('No such module in this programme');
  const updated = body.clockHours === undefined ? program : await recomputeTotal(tx, program.id);
  return { module, program: updated };
}

endpoint({
  name: 'programs-manage-module-update',
  methods: ['PATCH'],
  route: 'programs/{id}/modules/{moduleId}',
  access: [...MANAGERS, 'instructor'],
  params: ModuleParams,
  body: ModulePatch,
  handler: async ({ sql, params, body, caller }) => {
    const result = await changeModule(sql, caller, params, body);
    return json({ ...toModule(result.module), programTotalClockHours: result.program.total_clock_hours });
  },
});

endpoint({
  name: 'programs-manage-module-order',
  methods: ['PUT'],
  route: 'programs/{id}/modules/order',
  access: MANAGERS,
  params: ProgramParams,
  body: ModuleOrder,
  handler: async ({ sql, params, body }) => {
    const program = await lockProgram(sql, params.id);
    assertActive(program);
    const current = await modulesOf(sql, program.id);
    const known = new Set(current.map((module) => module.id));
    if (body.moduleIds.length !== current.length || !body.moduleIds.every((id) => known.has(id))) {
      throw badRequest('List every module of the programme exactly once', [
        { field: 'body.moduleIds', message: `Expected the ${current.length} module ids of this programme` },
      ]);
    }
    // One statement; positions are checked for uniqueness at commit (deferred constraint).
    await sql`
      update modules m
         set position = o.ordinality
        from unnest(${sql.array(body.moduleIds, UUID_ARRAY)}::uuid[]) with ordinality as o(id, ordinality)
       where m.id = o.id and m.program_id = ${program.id} and m.position <> o.ordinality`;
    const modules = await modulesOf(sql, program.id);
    return json({ programId: params.id, modules: modules.map(toModule) });
  },
});
