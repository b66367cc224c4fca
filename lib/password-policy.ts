// The password rule for every password a person chooses (self-registration, password change):
// a length between PASSWORD_MIN_LENGTH and PASSWORD_MAX_LENGTH, not a common password, and not
// containing the local part of the account's email. NIST SP 800-63B's rule: length and a blocklist,
// no composition rules (they push people to "Password1!").
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { normalizeEmail } from './crypto';
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from './passwords';

const LIST_FILE = 'common-passwords.txt';

/**
 * `lib/common-passwords.txt`, found by walking up from this file: `lib/` from source, `dist/lib/`
 * when compiled (tsc does not copy it; the deployment ships the repository's `lib/` folder with it).
 */
function listPath(): string {
  let dir = __dirname;
  for (;;) {
    for (const candidate of [path.join(dir, LIST_FILE), path.join(dir, 'lib', LIST_FILE)]) {
      if (existsSync(candidate)) return candidate;
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`${LIST_FILE} not found above ${__dirname}`);
    dir = parent;
  }
}

let commonPasswords: Set<string> | undefined;

/** The list, read on first use (not at module load: cold starts that check no password skip it). */
function commonPasswordSet(): Set<string> {
  commonPasswords ??= new Set(
    readFileSync(listPath(), 'utf8')
      .split(/\r?\n/)
      .map((line) => line.trim().toLowerCase())
      .filter((line) => line !== '' && !line.startsWith('#')),
  );
  return commonPasswords;
}

/**
 * A common password with digits or symbols stuck on either end ("monkey!!!!!!!!", "2024password")
 * is as guessable as the password itself: both ends are stripped before looking it up too.
 */
function isCommon(password: string): boolean {
  const lowered = password.toLowerCase();
  const core = lowered.replace(/^[\p{N}\p{P}\p{S}\s]+|[\p{N}\p{P}\p{S}\s]+$/gu, '');
  const list = commonPasswordSet();
  return list.has(lowered) || (core.length >= 4 && list.has(core));
}

/** Local parts shorter than this ("al@…") would forbid too many good passwords to be worth it. */
const LOCAL_PART_MIN = 3;

/**
 * Why `password` is not acceptable, or null when it is. The maximum is checked first and in UTF-16
 * units, as `verifyPassword` checks it, so an over-long password costs no hashing and every accepted
 * password can sign in; the minimum counts characters (code points), so emoji count once.
 */
export function checkPasswordPolicy(password: string, context: { email?: string | undefined } = {}): string | null {
  if (password.length > PASSWORD_MAX_LENGTH) return `Use at most ${PASSWORD_MAX_LENGTH} characters`;
  if ([...password].length < PASSWORD_MIN_LENGTH) return `Use at least ${PASSWORD_MIN_LENGTH} characters`;
  if (isCommon(password)) return 'This password is too common; choose another one';
  if (context.email) {
    const localPart = normalizeEmail(context.email).split('@')[0] ?? '';
    if (localPart.length >= LOCAL_PART_MIN && password.toLowerCase().includes(localPart)) {
      return 'The password must not contain your email address';
    }
  }
  return null;
}
