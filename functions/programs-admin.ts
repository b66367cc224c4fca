// Programme and module administration (the public, read-only catalogue is functions/programs.ts): the
// routes and their request schemas; the rules and statements are lib/programs-admin.ts.
//
// Who may change what:
// * admin and staff create programmes and modules, change any field, reorder modules;
// * an instructor updates the content fields of what they teach (PROGRAM_EDIT_REACH below): a
//   programme's description, a module's title and description — nothing that changes requirements;
// * only an admin retires a programme. There is no delete: enrollments, progress, transcripts and
//   credentials point at programmes and modules (ON DELETE RESTRICT), and a retired programme's
//   enrollments simply continue.
//
// `total_clock_hours` is derived, never sent by a client (see lib/programs-admin.ts).

import { z } from 'zod';
import type { Role } from '../lib/access';
import { type ChangeInput, endpoint, type ReadInput } from '../lib/endpoint';
import { notFound } from '../lib/errors';
import { created, json } from '../lib/http';
import { limitSchema, nextLink, pageOf, pageSchema } from '../lib/pagination';
import { ManagedProgramView, managedProgramPageQuery, PROGRAM_ORDER, toManagedProgramView } from '../lib/programs';
import {
  addModule,
  assertMayEdit,
  changeModule,
  createProgram,
  findManagedProgram,
  INSTRUCTOR_PROGRAM_FIELDS,
  PROGRAM_MANAGERS as MANAGERS,
  MAX_MODULES_PER_PROGRAM,
  ManagedProgramListItemView,
  ManagedProgramWithModulesView,
  ModuleOrderView,
  ModuleWithTotalView,
  RetiredProgramView,
  reorderModules,
  retireProgram,
  updateProgram,
} from '../lib/programs-admin';
import { multiLine, singleLine } from '../lib/text';

/**
 * Who reads the management view (retired programmes, open-enrollment counts): those who manage,
 * teach or keep the records of programmes. Finance and admissions use the public catalogue
 * (decision 5 of docs/access-policy.md).
 */
const MANAGEMENT_VIEW_READERS: readonly Role[] = ['admin', 'staff', 'instructor', 'registrar'];

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

const ModuleOrder = z.strictObject({
  moduleIds: z
    .array(z.uuid())
    .min(1)
    .max(MAX_MODULES_PER_PROGRAM)
    .refine((ids) => new Set(ids).size === ids.length, { message: 'A module appears twice' }),
});

const ProgramParams = z.object({ id: z.uuid() });
type ProgramParams = z.infer<typeof ProgramParams>;
const ModuleParams = z.object({ id: z.uuid(), moduleId: z.uuid() });

const ListQuery = z.object({
  limit: limitSchema,
  cursor: PROGRAM_ORDER.cursor,
  status: z.enum(['active', 'retired']).optional(),
});

// ---------------------------------------------------------------------------------------------------
// Programmes
// ---------------------------------------------------------------------------------------------------

async function listManagedPrograms({ sql, query, request }: ReadInput<unknown, z.infer<typeof ListQuery>>) {
  const rows = await managedProgramPageQuery(sql, query, query.cursor, query.limit);
  const page = pageOf(rows, query.limit, (read) =>
    read.map((row) => ({
      ...toManagedProgramView(row),
      moduleCount: row.module_count,
      openEnrollments: row.open_enrollments,
    })),
  );
  return json(page, 200, nextLink(request.url, page.next));
}

endpoint({
  name: 'programs-manage-list',
  methods: ['GET'],
  // Not `admin/...`: Azure Functions reserves routes that start with "admin" for its own API.
  route: 'manage/programs',
  access: MANAGEMENT_VIEW_READERS,
  cache: 'private',
  query: ListQuery,
  responses: { 200: pageSchema(ManagedProgramListItemView) },
  handler: listManagedPrograms,
});

async function readManagedProgram({ sql, params }: ReadInput<ProgramParams>) {
  const program = await findManagedProgram(sql, params.id);
  if (!program) throw notFound('No such programme');
  return json(program);
}

endpoint({
  name: 'programs-manage-get',
  methods: ['GET'],
  route: 'manage/programs/{id}',
  access: MANAGEMENT_VIEW_READERS,
  cache: 'private',
  params: ProgramParams,
  responses: { 200: ManagedProgramWithModulesView },
  handler: readManagedProgram,
});

async function createProgramme({ sql, body, audit }: ChangeInput<unknown, unknown, z.infer<typeof NewProgram>>) {
  const program = await createProgram(sql, body);
  audit.resourceIds.programId = program.id;
  return created(program, `/api/manage/programs/${program.id}`);
}

endpoint({
  name: 'programs-manage-create',
  methods: ['POST'],
  route: 'programs',
  access: MANAGERS,
  body: NewProgram,
  responses: { 201: ManagedProgramWithModulesView },
  problems: [409],
  handler: createProgramme,
});

async function changeProgramme({
  sql,
  params,
  body,
  caller,
}: ChangeInput<ProgramParams, unknown, z.infer<typeof ProgramPatch>>) {
  await assertMayEdit(sql, caller, params.id, Object.keys(body), INSTRUCTOR_PROGRAM_FIELDS);
  return json(await updateProgram(sql, params.id, body));
}

endpoint({
  name: 'programs-manage-update',
  methods: ['PATCH'],
  route: 'programs/{id}',
  access: [...MANAGERS, 'instructor'],
  params: ProgramParams,
  body: ProgramPatch,
  responses: { 200: ManagedProgramView },
  problems: [409],
  handler: changeProgramme,
});

async function retireProgramme({ sql, params }: ChangeInput<ProgramParams>) {
  return json(await retireProgram(sql, params.id));
}

endpoint({
  name: 'programs-manage-retire',
  methods: ['POST'],
  route: 'programs/{id}/retire',
  access: ['admin'],
  params: ProgramParams,
  responses: { 200: RetiredProgramView },
  handler: retireProgramme,
});

// ---------------------------------------------------------------------------------------------------
// Modules
// ---------------------------------------------------------------------------------------------------

async function createModule({
  sql,
  params,
  body,
  audit,
}: ChangeInput<ProgramParams, unknown, z.infer<typeof ModuleCreate>>) {
  const module = await addModule(sql, params.id, body);
  audit.resourceIds.moduleId = module.id;
  return created(module, `/api/manage/programs/${params.id}`);
}

endpoint({
  name: 'programs-manage-module-create',
  methods: ['POST'],
  route: 'programs/{id}/modules',
  access: MANAGERS,
  params: ProgramParams,
  body: ModuleCreate,
  responses: { 201: ModuleWithTotalView },
  problems: [409],
  handler: createModule,
});

async function updateModule({
  sql,
  params,
  body,
  caller,
}: ChangeInput<z.infer<typeof ModuleParams>, unknown, z.infer<typeof ModulePatch>>) {
  return json(await changeModule(sql, caller, params, body));
}

endpoint({
  name: 'programs-manage-module-update',
  methods: ['PATCH'],
  route: 'programs/{id}/modules/{moduleId}',
  access: [...MANAGERS, 'instructor'],
  params: ModuleParams,
  body: ModulePatch,
  responses: { 200: ModuleWithTotalView },
  problems: [409],
  handler: updateModule,
});

async function orderModules({ sql, params, body }: ChangeInput<ProgramParams, unknown, z.infer<typeof ModuleOrder>>) {
  return json({ programId: params.id, modules: await reorderModules(sql, params.id, body.moduleIds) });
}

endpoint({
  name: 'programs-manage-module-order',
  methods: ['PUT'],
  route: 'programs/{id}/modules/order',
  access: MANAGERS,
  params: ProgramParams,
  body: ModuleOrder,
  responses: { 200: ModuleOrderView },
  problems: [409],
  handler: orderModules,
});
