// Demo course content for npm start's demo programmes: one published lesson per module with an H5P
// activity in it, written and uploaded by the demo instructor through the same functions the routes use
// (lib/lessons.ts, lib/h5p.ts: the package validated and unpacked into the files store), so it is
// rendered, sanitised and checked like any lesson and package. The packages are built from the
// repository's files (dev/demo-h5p/), nothing downloaded. Runs inside the demo seed's transaction
// (dev/seed.ts), with the files store up (dev/start.ts starts Azurite first).
import { Readable } from 'node:stream';
import type postgres from 'postgres';
import { storeH5pActivity } from '../lib/h5p';
import { publishLessonVersion, saveLessonVersion } from '../lib/lessons';
import { DEMO_ACTIVITIES, demoH5pPackage } from './demo-h5p';

type Sql = postgres.TransactionSql;

function demoMarkdown(code: string, title: string, hours: number, activity: string): string {
  return [
    `# ${title}`,
    `Welcome to **${code}**. This module counts for ${hours} clock hours.`,
    '## Check yourself',
    `(H5P: ${activity})`,
    '## What you will learn',
    '- the key terms of the module, and why they matter chair-side;\n- the steps of each procedure, in order;\n- how to keep yourself and the patient safe.',
    '## Before the next class',
    '1. Read this lesson to the end.\n2. Note one question for your instructor.',
    '> Infection control comes first: gloves, mask and eye protection for every patient.',
  ].join('\n\n');
}

/**
 * In every module of the programmes, by `authorId`: one demo H5P activity (the two in turn) and a published
 * lesson (version 1) that shows it.
 */
export async function seedDemoLessons(sql: Sql, programIds: readonly string[], authorId: string): Promise<void> {
  const modules = await sql<{ id: string; code: string; title: string; clock_hours: string }[]>`
    select id, code, title, clock_hours from modules where program_id = any(${programIds as string[]}::uuid[])
     order by program_id, position`;
  for (const [index, module] of modules.entries()) {
    const activity = DEMO_ACTIVITIES[index % DEMO_ACTIVITIES.length] as (typeof DEMO_ACTIVITIES)[number];
    const body = Readable.from([demoH5pPackage(activity)]);
    await storeH5pActivity(sql, { moduleId: module.id, activityKey: activity, body }, authorId);
    const lesson = {
      title: module.title,
      markdown: demoMarkdown(module.code, module.title, Number(module.clock_hours), activity),
    };
    const saved = await saveLessonVersion(sql, module.id, lesson, authorId);
    await publishLessonVersion(sql, module.id, saved.version, authorId);
  }
}
