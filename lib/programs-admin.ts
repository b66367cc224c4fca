// Programme and module administration (functions/programs-admin.ts): who may change which fields, and
// the statements that create, change, retire and reorder. The catalogue's views and list queries are
// lib/programs.ts.
//
// `total_clock_hours` is derived, never sent by a client: every write that adds a module or changes a
// module's clock hours recomputes it in the same transaction, under a row lock on the programme, so
// two concurrent module writes cannot leave a stale sum (the lock also serialises position numbers).

import { z } from 'zod';
import { type Caller, type RecordReach, type Role, reachesProgram, scopeOf } from './access';
import { type AnySql, type TransactionSql, UUID_ARRAY } from './db';
import { badRequest, conflict, constraintProblem, forbidden, notFound } from './errors';
import {
  type ManagedProgramRow,
  ManagedProgramView,
  ModuleView,
  PROGRAM_CODE_TAKEN,
  toManagedProgramView,
} from './programs';

/** Roles that manage the structure of programmes (any field, any programme). */
export const PROGRAM_MANAGERS: readonly Role[] = ['admin', 'staff'];
/** Who edits which programme: managers any, an instructor those they teach (content fields only). */
const PROGRAM_EDIT_REACH: RecordReach = { all: PROGRAM_MANAGERS, taught: true };
export const MAX_MODULES_PER_PROGRAM = 200;

/** Fields an instructor may change: content, not requirements. */
export const INSTRUCTOR_PROGRAM_FIELDS: ReadonlySet<string> = new Set(['description']);
export const INSTRUCTOR_MODULE_FIELDS: ReadonlySet<string> = new Set(['title', 'description']);

interface ModuleRow {
  id: string;
  code: string;
  title: string;
  description: string | null;
  delivery_type: 'online' | 'hybrid' | 'in_person';
  clock_hours: number;
  requires_in_person: boolean;
  position: number;
}

export const toModuleView = (row: ModuleRow): z.infer<typeof ModuleView> => ({
  id: row.id,
  code: row.code,
  title: row.title,
  description: row.description,
  deliveryType: row.delivery_type,
  clockHours: row.clock_hours,
  requiresInPerson: row.requires_in_person,
  position: row.position,
});

export interface NewModule {
  code: string;
  title: string;
  description?: string | null | undefined;
  deliveryType: string;
  clockHours: number;
  requiresInPerson: boolean;
  /** 1-based; default: last. */
  position?: number | undefined;
}

export interface NewProgram {
  code: string;
  name: string;
  credentialLevel: string;
  description?: string | null | undefined;
  modules: readonly Omit<NewModule, 'position'>[];
}

export interface ProgramChange {
  name?: string | undefined;
  credentialLevel?: string | undefined;
  description?: string | null | undefined;
}

export type ModuleChange = Partial<Omit<NewModule, 'position'>>;

// ---------------------------------------------------------------------------------------------------
// Shared steps
// ---------------------------------------------------------------------------------------------------

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

async function modulesOf(sql: AnySql, programId: string): Promise<ModuleRow[]> {
  return sql<ModuleRow[]>`select * from modules where program_id = ${programId} order by position`;
}

/**
 * Managers change anything; an instructor changes only `allowed` fields of a programme they teach.
 * Checked before any write so a refused request changes nothing.
 */
export async function assertMayEdit(
  sql: AnySql,
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

/** A programme as the management routes answer it: with its modules in order. */
export const ManagedProgramWithModulesView = ManagedProgramView.extend({ modules: z.array(ModuleView) });
/** A row of the management list: with its module and open-enrollment counts. */
export const ManagedProgramListItemView = ManagedProgramView.extend({
  moduleCount: z.int().min(0),
  openEnrollments: z.int().min(0).describe('Pending, active and on-hold enrollments'),
});
/** The answer of a retirement: the programme and how many enrollments remain open in it. */
export const RetiredProgramView = ManagedProgramView.extend({ openEnrollments: z.int().min(0) });
/** The answer of a reorder: the programme's modules in their new order. */
export const ModuleOrderView = z.strictObject({ programId: z.uuid(), modules: z.array(ModuleView) });

/** One programme, retired or not, with its modules in order; null when there is none. */
export async function findManagedProgram(sql: AnySql, id: string) {
  const [row] = await sql<(ManagedProgramRow & { modules: ModuleRow[] })[]>`
    select p.*,
           coalesce((select json_agg(m order by m.position) from modules m where m.program_id = p.id), '[]') as modules
      from programs p
     where p.id = ${id}`;
  return row ? { ...toManagedProgramView(row), modules: row.modules.map(toModuleView) } : null;
}

/**
 * Creates a programme and its modules, positions in the order given, in one statement; a code taken
 * is a 409 naming body.code.
 */
export async function createProgram(sql: AnySql, input: NewProgram) {
  const total = input.modules.reduce((sum, module) => sum + module.clockHours, 0);
  const [row] = await sql<(ManagedProgramRow & { modules: ModuleRow[] })[]>`
    with program as (
      insert into programs (code, name, credential_level, total_clock_hours, description)
      values (${input.code}, ${input.name}, ${input.credentialLevel}, ${total}, ${input.description ?? null})
      on conflict (code) do nothing
      returning *),
    inserted as (
      insert into modules (program_id, code, title, description, delivery_type, clock_hours, requires_in_person,
                           position)
      select program.id, m.code, m.title, m.description, m."deliveryType", m."clockHours", m."requiresInPerson",
             m.position
        from program,
             jsonb_to_recordset(${sql.json(input.modules.map((m, i) => ({ ...m, position: i + 1 })))}::jsonb)
               as m(code text, title text, description text, "deliveryType" text, "clockHours" int,
                    "requiresInPerson" boolean, position int)
      returning *)
    select program.*, coalesce((select json_agg(inserted order by inserted.position) from inserted), '[]') as modules
      from program`;
  if (!row) throw constraintProblem(PROGRAM_CODE_TAKEN, input);
  return { ...toManagedProgramView(row), modules: row.modules.map(toModuleView) };
}

/** Changes a programme's own fields (a null description clears it); 404 for none. */
export async function updateProgram(sql: AnySql, id: string, change: ProgramChange) {
  const [row] = await sql<ManagedProgramRow[]>`
    update programs
       set name = coalesce(${change.name ?? null}, name),
           credential_level = coalesce(${change.credentialLevel ?? null}, credential_level),
           description = ${change.description === undefined ? sql`description` : change.description}
     where id = ${id}
    returning *`;
  if (!row) throw notFound('No such programme');
  return toManagedProgramView(row);
}

/**
 * Retires a programme. Idempotent: retiring a retired programme answers its current state. Open
 * enrollments continue; the count tells the administrator how many.
 */
export async function retireProgram(sql: AnySql, id: string) {
  const [row] = await sql<(ManagedProgramRow & { open_enrollments: number })[]>`
    with retired as (
      update programs set status = 'retired' where id = ${id} and status = 'active' returning *)
    select p.*,
           (select count(*)::int from enrollments e
             where e.program_id = p.id and e.status in ('pending', 'active', 'on_hold')) as open_enrollments
      from (select * from retired
            union all
            select * from programs where id = ${id} and not exists (select 1 from retired)) p`;
  if (!row) throw notFound('No such programme');
  return { ...toManagedProgramView(row), openEnrollments: row.open_enrollments };
}

// ---------------------------------------------------------------------------------------------------
// Modules
// ---------------------------------------------------------------------------------------------------

/** A module as the module routes answer it: with its programme's new total. */
export const ModuleWithTotalView = ModuleView.extend({ programTotalClockHours: z.int().min(0) });

const withTotal = (module: ModuleRow, program: ManagedProgramRow): z.infer<typeof ModuleWithTotalView> => ({
  ...toModuleView(module),
  programTotalClockHours: program.total_clock_hours,
});

/** Inserts a module at its position (default: last), shifting the ones after it. */
export async function addModule(tx: TransactionSql, programId: string, input: NewModule) {
  const program = await lockProgram(tx, programId);
  assertActive(program);
  const [counted] = await tx<{ count: number }[]>`
    select count(*)::int as count from modules where program_id = ${program.id}`;
  const count = counted?.count ?? 0;
  if (count >= MAX_MODULES_PER_PROGRAM) throw conflict(`A programme has at most ${MAX_MODULES_PER_PROGRAM} modules`);
  const position = input.position ?? count + 1;
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
    values (${program.id}, ${input.code}, ${input.title}, ${input.description ?? null}, ${input.deliveryType},
            ${input.clockHours}, ${input.requiresInPerson}, ${position})
    returning *`;
  return withTotal(module as ModuleRow, await recomputeTotal(tx, program.id));
}

/**
 * Changes a module as the caller may (assertMayEdit: instructors content fields of what they teach);
 * structural fields only while the programme is active.
 */
export async function changeModule(
  tx: TransactionSql,
  caller: Caller,
  ids: { id: string; moduleId: string },
  change: ModuleChange,
) {
  await assertMayEdit(tx, caller, ids.id, Object.keys(change), INSTRUCTOR_MODULE_FIELDS);
  const program = await lockProgram(tx, ids.id);
  const structural = ['code', 'deliveryType', 'clockHours', 'requiresInPerson'].some((field) => field in change);
  if (structural) assertActive(program);
  const [module] = await tx<ModuleRow[]>`
    update modules
       set code = coalesce(${change.code ?? null}, code),
           title = coalesce(${change.title ?? null}, title),
           description = ${change.description === undefined ? tx`description` : change.description},
           delivery_type = coalesce(${change.deliveryType ?? null}, delivery_type),
           clock_hours = coalesce(${change.clockHours ?? null}::int, clock_hours),
           requires_in_person = coalesce(${change.requiresInPerson ?? null}::boolean, requires_in_person)
     where id = ${ids.moduleId} and program_id = ${ids.id}
    returning *`;
  if (!module) throw notFound('No such module in this programme');
  return withTotal(module, change.clockHours === undefined ? program : await recomputeTotal(tx, program.id));
}

/**
 * Puts the modules in the order given, which must list every module of the programme exactly once
 * (else 400 naming body.moduleIds). One statement; positions are checked for uniqueness at commit
 * (deferred constraint).
 */
export async function reorderModules(tx: TransactionSql, programId: string, moduleIds: readonly string[]) {
  const program = await lockProgram(tx, programId);
  assertActive(program);
  const current = await modulesOf(tx, program.id);
  const known = new Set(current.map((module) => module.id));
  if (moduleIds.length !== current.length || !moduleIds.every((id) => known.has(id))) {
    throw badRequest('List every module of the programme exactly once', [
      { field: 'body.moduleIds', message: `Expected the ${current.length} module ids of this programme` },
    ]);
  }
  await tx`
    update modules m
       set position = o.ordinality
      from unnest(${tx.array([...moduleIds], UUID_ARRAY)}::uuid[]) with ordinality as o(id, ordinality)
     where m.id = o.id and m.program_id = ${program.id} and m.position <> o.ordinality`;
  return (await modulesOf(tx, program.id)).map(toModuleView);
}
