// The ZIP writer of dev/zip.ts for tests, and the smallest H5P package lib/h5p.ts accepts.
import { zip } from '../../dev/zip';

export { type ZipEntry, zip } from '../../dev/zip';

/** The smallest package lib/h5p.ts accepts: h5p.json, content/content.json and its main library. */
export function minimalH5p(title = 'Matrix quiz'): Buffer {
  return zip([
    {
      name: 'h5p.json',
      data: JSON.stringify({
        title,
        mainLibrary: 'H5P.MultiChoice',
        preloadedDependencies: [{ machineName: 'H5P.MultiChoice', majorVersion: 1, minorVersion: 16 }],
      }),
    },
    { name: 'content/content.json', data: '{"question":"<p>?</p>","answers":[]}' },
    { name: 'H5P.MultiChoice-1.16/library.json', data: '{"machineName":"H5P.MultiChoice"}' },
  ]);
}
