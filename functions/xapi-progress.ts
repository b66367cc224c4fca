// Which xAPI activities belong to a module: its editors (the lessons' reach, lib/lessons.ts) list the
// activity IRIs of its course content, and statements a student sends about them move that student's
// progress in the module (lib/xapi-progress.ts, docs/xapi.md "Into the LMS").
import { z } from 'zod';
import { type ChangeInput, endpoint, type ReadInput } from '../lib/endpoint';
import { notFound } from '../lib/errors';
import { json } from '../lib/http';
import { CONTENT_EDITORS, contentScope, reachableModule } from '../lib/lessons';
import { singleLine } from '../lib/text';
import { MAX_MODULE_ACTIVITIES, moduleActivities, replaceModuleActivities } from '../lib/xapi-progress';
import { isIri } from '../lib/xapi-validation';

const ModuleParams = z.object({ moduleId: z.uuid() });

const ModuleActivities = z.strictObject({
  activities: z
    .array(singleLine(2048).refine(isIri, { message: 'An activity id is an absolute IRI' }))
    .max(MAX_MODULE_ACTIVITIES)
    .transform((iris) => [...new Set(iris)]),
});

const NO_MODULE = 'No module whose activities you may see';

async function readModuleActivities({ sql, params, caller }: ReadInput<z.infer<typeof ModuleParams>>) {
  const module = await reachableModule(sql, contentScope(caller), params.moduleId, 'write');
  if (!module) throw notFound(NO_MODULE);
  return json({ moduleId: module.id, activities: await moduleActivities(sql, module.id) });
}

endpoint({
  name: 'xapi-module-activities-read',
  methods: ['GET'],
  route: 'modules/{moduleId}/xapi-activities',
  access: CONTENT_EDITORS,
  params: ModuleParams,
  handler: readModuleActivities,
});

async function setModuleActivities({
  sql,
  params,
  body,
  caller,
}: ChangeInput<z.infer<typeof ModuleParams>, unknown, z.infer<typeof ModuleActivities>>) {
  const module = await reachableModule(sql, contentScope(caller), params.moduleId, 'write');
  if (!module) throw notFound(NO_MODULE);
  const activities = await replaceModuleActivities(sql, module.id, body.activities, caller.userId);
  return json({ moduleId: module.id, activities });
}

endpoint({
  name: 'xapi-module-activities-write',
  methods: ['PUT'],
  route: 'modules/{moduleId}/xapi-activities',
  access: CONTENT_EDITORS,
  maxBodyBytes: 512 * 1024,
  params: ModuleParams,
  body: ModuleActivities,
  handler: setModuleActivities,
});
