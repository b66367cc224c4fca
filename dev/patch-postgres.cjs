// Guards postgres.js 3.4.9 against writing to a connection whose socket is gone (porsager/postgres#1208,
// fix proposed in #1209, not released). When the server dies under a transaction, postgres.js's own
// ROLLBACK (sql.begin) or a reserved connection's next statement is queued for a socket that closed: the
// write runs from setImmediate and throws `TypeError: Cannot read properties of null (reading 'write')`,
// an uncaught exception that ends the process, every request on the instance with it. And a write still
// pending when a socket closes stays in the connection's buffer, sent before the next connection's startup
// (which then hangs until the connect timeout), or, after a socket error, the statement stays queued and
// takes the answer meant for the next one. The guard settles such a write with CONNECTION_CLOSED (the
// caller gets an error it can handle) and a close drops the dead socket's buffer and fails whatever
// still waits on it.
//
// Run by `npm install` / `npm ci` (postinstall) and by the test suite's global setup; idempotent. It edits
// the installed package only, and stops the install with an error when the code it guards has changed
// (another postgres.js version): check #1208 then, and drop this file once a release has the fix.
'use strict';
const { readFileSync, writeFileSync } = require('node:fs');
const path = require('node:path');

const MARK = '/* aada: porsager/postgres#1208 */';

const EDITS = [
  {
    what: 'nextWrite on a closed socket',
    from: `  function nextWrite(fn) {
    const x = socket.write(chunk, fn)`,
    to: `  function nextWrite(fn) {
    if (!socket) { ${MARK}
      nextWriteTimer !== null && clearImmediate(nextWriteTimer)
      chunk = nextWriteTimer = null
      error(Errors.connection('CONNECTION_CLOSED', options))
      return false
    }
    const x = socket.write(chunk, fn)`,
  },
  {
    what: 'a write pending when the socket closes',
    from: `    incomings = null
    clearImmediate(nextWriteTimer)
    socket.removeListener('data', data)`,
    to: `    incomings = null
    clearImmediate(nextWriteTimer)
    chunk = nextWriteTimer = null ${MARK}
    socket.removeListener('data', data)`,
  },
  {
    what: 'statements queued after a socket error',
    from: `    !hadError && (query || sent.length) && error(Errors.connection('CONNECTION_CLOSED', options, socket))`,
    // A statement, not an expression: postgres.js has no semicolons, and a line starting with ( would call the
    // `return reconnect()` above it.
    to: `    if (query || sent.length) error(Errors.connection('CONNECTION_CLOSED', options, socket)) ${MARK}`,
  },
];

/** The installed postgres.js's connection modules: ESM (src) and CommonJS (cjs/src). */
function connectionModules(root) {
  const packageDir = path.join(root, 'node_modules', 'postgres');
  const { version } = JSON.parse(readFileSync(path.join(packageDir, 'package.json'), 'utf8'));
  return { version, files: ['src', 'cjs/src'].map((dir) => path.join(packageDir, dir, 'connection.js')) };
}

/** Applies the guard to the installed postgres.js under `root`; returns the files it changed. */
function patchPostgres(root = path.resolve(__dirname, '..')) {
  const { version, files } = connectionModules(root);
  const changed = [];
  for (const file of files) {
    let source = readFileSync(file, 'utf8');
    if (source.includes(MARK)) {
      if (EDITS.every((edit) => source.includes(edit.to))) continue;
      throw new Error(`${file} is partly patched: reinstall postgres (npm ci) and run ${__filename} again`);
    }
    for (const edit of EDITS) {
      if (!source.includes(edit.from)) {
        throw new Error(
          `postgres ${version}: ${path.relative(root, file)} no longer has the code guarded for "${edit.what}" ` +
            `(porsager/postgres#1208); check whether this version fixes it and update or remove ${__filename}`,
        );
      }
      source = source.replace(edit.from, edit.to);
    }
    writeFileSync(file, source);
    changed.push(file);
  }
  return changed;
}

module.exports = { patchPostgres, MARK };

if (require.main === module) {
  const changed = patchPostgres();
  if (changed.length > 0)
    console.log(`postgres.js: guarded against writes to closed sockets (#1208) in ${changed.length} files`);
}
