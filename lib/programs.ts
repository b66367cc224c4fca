// Programmes as the catalogue and the management routes show them, and the queries of their lists.
// Shared by functions/programs.ts (the public catalogue), functions/programs-admin.ts and the benchmark.

import { z } from 'zod';
import type { AnySql } from './db';
import { declareConstraints } from './errors';
import { keyset } from './pagination';

/** The unique constraint on programme codes (also what `on conflict (code)` reports). */
export const PROGRAM_CODE_TAKEN = 'programs_code_key';

declareConstraints({
  [PROGRAM_CODE_TAKEN]: { status: 409, field: 'body.code', message: 'A programme with this code already exists' },
  modules_program_id_code_key: {
    status: 409,
    field: 'body.code',
    message: 'This programme already has a module with this code',
  },
});

export interface ProgramRow {
  id: string;
  code: string;
  name: string;
  credential_level: string;
  total_clock_hours: number;
  description: string | null;
}

/** The programme's public fields, as the catalogue serves them. */
export const ProgramView = z.strictObject({
  id: z.uuid(),
  code: z.string(),
  name: z.string(),
  credentialLevel: z.string().describe("A label: 'certificate', 'diploma'"),
  totalClockHours: z.int().min(0).describe('The sum of its modules’ clock hours'),
  description: z.string().nullable(),
});

export const toProgramView = (row: ProgramRow): z.infer<typeof ProgramView> => ({
  id: row.id,
  code: row.code,
  name: row.name,
  credentialLevel: row.credential_level,
  totalClockHours: row.total_clock_hours,
  description: row.description,
});

/** A programme as the management routes see it: the catalogue's fields and its life cycle. */
export interface ManagedProgramRow extends ProgramRow {
  status: 'active' | 'retired';
  created_at: Date;
  updated_at: Date;
}

export const ManagedProgramView = ProgramView.extend({
  status: z.enum(['active', 'retired']),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
});

export const toManagedProgramView = (row: ManagedProgramRow): z.infer<typeof ManagedProgramView> => ({
  ...toProgramView(row),
  status: row.status,
  createdAt: row.created_at.toISOString(),
  updatedAt: row.updated_at.toISOString(),
});

/** Both programme lists are in code order (codes are unique: programs_code_key). */
export const PROGRAM_ORDER = keyset([['p.code', 'text']], 'asc');

/** The catalogue's version (migration 0012): changes whenever a programme or module does. */
export async function catalogueVersion(sql: AnySql): Promise<string> {
  const [row] = await sql<{ version: string }[]>`select version::text from catalogue_version`;
  return row?.version ?? '0';
}

/** A page of the public catalogue: active programmes only (`limit + 1` rows, see pageOf). */
export function cataloguePageQuery(sql: AnySql, after: readonly [string] | undefined, limit: number) {
  return sql<(ProgramRow & { page_key: string[] })[]>`
    select p.id, p.code, p.name, p.credential_level, p.total_clock_hours, p.description, ${PROGRAM_ORDER.key(sql)}
      from programs p
     where p.status = 'active' and ${PROGRAM_ORDER.after(sql, after)}
     ${PROGRAM_ORDER.orderBy(sql)}
     limit ${limit + 1}`;
}

export interface CatalogueProgramRow extends ProgramRow {
  modules: {
    id: string;
    code: string;
    title: string;
    description: string | null;
    deliveryType: string;
    clockHours: number;
    requiresInPerson: boolean;
    position: number;
  }[];
}

/** One active programme with its modules in order, in one round trip (the database aggregates them). */
export async function findCatalogueProgram(sql: AnySql, id: string): Promise<CatalogueProgramRow | undefined> {
  const [row] = await sql<CatalogueProgramRow[]>`
    select p.id, p.code, p.name, p.credential_level, p.total_clock_hours, p.description,
           coalesce(
             (select json_agg(json_build_object(
                       'id', m.id, 'code', m.code, 'title', m.title, 'description', m.description,
                       'deliveryType', m.delivery_type, 'clockHours', m.clock_hours,
                       'requiresInPerson', m.requires_in_person, 'position', m.position)
                     order by m.position)
                from modules m where m.program_id = p.id),
             '[]'::json) as modules
      from programs p
     where p.id = ${id} and p.status = 'active'`;
  return row;
}

/** A module as the catalogue and the management routes show it. */
export const ModuleView = z.strictObject({
  id: z.uuid(),
  code: z.string(),
  title: z.string(),
  description: z.string().nullable(),
  deliveryType: z.enum(['online', 'hybrid', 'in_person']),
  clockHours: z.int().min(0),
  requiresInPerson: z.boolean(),
  position: z.int().min(1).describe('1-based, in programme order'),
});

export const CatalogueProgramView = ProgramView.extend({ modules: z.array(ModuleView) });

export const toCatalogueProgramView = (row: CatalogueProgramRow): z.infer<typeof CatalogueProgramView> => ({
  ...toProgramView(row),
  modules: row.modules as z.infer<typeof ModuleView>[],
});

export interface ManagedProgramListRow extends ManagedProgramRow {
  module_count: number;
  open_enrollments: number;
  page_key: string[];
}

/** A page of every programme, retired ones too, with module and open-enrollment counts. */
export function managedProgramPageQuery(
  sql: AnySql,
  filter: { status?: ManagedProgramRow['status'] | undefined },
  after: readonly [string] | undefined,
  limit: number,
) {
  return sql<ManagedProgramListRow[]>`
    select p.*,
           (select count(*)::int from modules m where m.program_id = p.id) as module_count,
           (select count(*)::int from enrollments e
             where e.program_id = p.id and e.status in ('pending', 'active', 'on_hold')) as open_enrollments,
           ${PROGRAM_ORDER.key(sql)}
      from programs p
     where ${PROGRAM_ORDER.after(sql, after)}
           ${filter.status ? sql`and p.status = ${filter.status}` : sql``}
     ${PROGRAM_ORDER.orderBy(sql)}
     limit ${limit + 1}`;
}
