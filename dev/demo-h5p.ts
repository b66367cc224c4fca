// The demo H5P activities (dev/demo-h5p/): each activity's h5p.json and content/ packed with the library
// folder of our own small content type into a .h5p package, in memory, from the repository's files.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './database';
import { type ZipEntry, zip } from './zip';

const DEMO_DIR = path.join(REPO_ROOT, 'dev', 'demo-h5p');
const LIBRARY = 'H5P.AadaQuiz-1.0';

/** The demo activities by key (their folder's name). */
export const DEMO_ACTIVITIES = ['glove-order', 'hand-washing'] as const;
export type DemoActivity = (typeof DEMO_ACTIVITIES)[number];

function entriesOf(folder: string, prefix: string): ZipEntry[] {
  return readdirSync(path.join(DEMO_DIR, folder), { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((entry) => {
      const name = `${prefix}${entry.name}`;
      if (entry.isDirectory()) return entriesOf(path.join(folder, entry.name), `${name}/`);
      return [{ name, data: readFileSync(path.join(DEMO_DIR, folder, entry.name)) }];
    });
}

/** The .h5p package of a demo activity: its h5p.json and content/, and the library it runs on. */
export function demoH5pPackage(activity: DemoActivity): Buffer {
  return zip([...entriesOf(activity, ''), ...entriesOf(LIBRARY, `${LIBRARY}/`)]);
}
