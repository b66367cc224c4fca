// The demo data of npm start (dev/seed.ts) gives every module a published lesson with an H5P activity,
// which a demo student reads and opens through the API, as the portal will.
import { randomUUID } from 'node:crypto';
import { expect, test } from 'vitest';
import { seedDemoData } from '../dev/seed';
import { issueAccessToken } from '../lib/auth';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';

const app = useTestApp();

test('a demo student reads the published lesson of each module of their programme', async () => {
  expect(await seedDemoData(app.db.sql)).toBe(true);
  const [enrollment] = await app.db.sql<{ user_id: string; program_id: string }[]>`
    select user_id, program_id from enrollments where status = 'active' limit 1`;
  const token = await issueAccessToken({ id: enrollment?.user_id as string, roles: ['student'] }, randomUUID());
  const modules = await app.db.sql<{ id: string; title: string }[]>`
    select id, title from modules where program_id = ${enrollment?.program_id as string}`;
  expect(modules.length).toBeGreaterThan(0);
  for (const module of modules) {
    const response = await send('GET', `/modules/${module.id}/lesson`, { as: token });
    expect(response.status).toBe(200);
    const lesson = (await response.json()) as {
      title: string;
      html: string;
      version: number;
      activities: { available: boolean; href: string }[];
    };
    expect([lesson.title, lesson.version]).toEqual([module.title, 1]);
    expect(lesson.html).toContain(`<h1>${module.title.replace(/&/g, '&amp;')}</h1>`);
    const { activities } = lesson;
    expect(activities).toHaveLength(1);
    expect(activities[0]?.available).toBe(true);
    expect(lesson.html).toContain('<iframe class="h5p-player" src="/api/h5p-player/');
    const href = activities[0]?.href ?? '(none)';
    const opened = await send('GET', href.replace(/^\/api/, ''), { as: token });
    expect(opened.status).toBe(200);
    const { playerUrl, assetBase } = (await opened.json()) as { playerUrl: string; assetBase: string };
    expect((await app.api(playerUrl.replace(/^\/api/, ''))).status).toBe(200);
    const content = await app.api(`${assetBase.replace(/^\/api/, '')}content/content.json`);
    expect(((await content.json()) as { question: string }).question).toMatch(/\?$/);
  }
});
