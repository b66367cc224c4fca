// Demo course content for npm start's demo programmes: one published lesson per module, written by
// the demo instructor through the same functions the lesson routes use (lib/lessons.ts), so it is
// rendered and sanitised like any lesson. Runs inside the demo seed's transaction (dev/seed.ts).
import type postgres from 'postgres';
import { publishLessonVersion, saveLessonVersion } from '../lib/lessons';

type Sql = postgres.TransactionSql;

function demoMarkdown(code: string, title: string, hours: number): string {
  return [
    `# ${title}`,
    `Welcome to **${code}**. This module counts for ${hours} clock hours.`,
    '## What you will learn',
    '- the key terms of the module, and why they matter chair-side;\n- the steps of each procedure, in order;\n- how to keep yourself and the patient safe.',
    '## Before the next class',
    '1. Read this lesson to the end.\n2. Note one question for your instructor.',
    '> Infection control comes first: gloves, mask and eye protection for every patient.',
  ].join('\n\n');
}

/** A published lesson (version 1) in every module of the programmes, by `authorId`. */
export async function seedDemoLessons(sql: Sql, programIds: readonly string[], authorId: string): Promise<void> {
  const modules = await sql<{ id: string; code: string; title: string; clock_hours: string }[]>`
    select id, code, title, clock_hours from modules where program_id = any(${programIds as string[]}::uuid[])`;
  for (const module of modules) {
    const lesson = {
      title: module.title,
      markdown: demoMarkdown(module.code, module.title, Number(module.clock_hours)),
    };
    const saved = await saveLessonVersion(sql, module.id, lesson, authorId);
    await publishLessonVersion(sql, module.id, saved.version, authorId);
  }
}
