// What a reader has done in an H5P activity: the content type's own state (its getCurrentState(), a
// JSON string: answers given, the page reached), saved by the player page (lib/h5p-player.ts) under its
// player grant, which names the reader (lib/h5p.ts playerAddress), and put in the page when it opens
// again (no route reads it back: the page's opaque origin could read no answer but one open to every
// origin, which personal data never is). One row per activity and reader (migration 0046), encrypted: a content type keeps anything in
// its state, free-text answers included. A new package under the same key is a new activity: its state
// starts afresh, as the old one may not fit the new content.
import { z } from 'zod';
import { decrypt, encrypt } from './crypto';
import type { AnySql } from './db';
import { badRequest } from './errors';

/** The longest state kept (characters of its JSON): a long interactive book's is some tens of thousands. */
export const H5P_STATE_MAX_CHARS = 200_000;
/** The body: `{"state": "<JSON>"}` or `{"state": null}`, in UTF-8, a little over the state's limit. */
export const H5P_STATE_BODY_BYTES = 4 * H5P_STATE_MAX_CHARS;

/** The reader's saved state: the content type's own JSON, or null while nothing is saved. */
export interface SavedH5pState {
  state: string | null;
  savedAt: Date | null;
}

/** Lone UTF-16 surrogates: JSON may escape them (`"\ud800"`), UTF-8 cannot store them. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

const stateProblem = (message: string) => badRequest(message, [{ field: 'body.state', message }]);

/**
 * The state a save sends. The player posts it as `text/plain` (a sandboxed frame's request must stay a
 * simple one, sent without a preflight, which its opaque origin would not pass), so the bytes are read here:
 * UTF-8 JSON `{"state": string | null}`, the string itself JSON (what getCurrentState() gave, stringified).
 */
export function parseStateBody(bytes: Buffer | undefined): string | null {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes ?? Buffer.alloc(0)));
  } catch {
    throw badRequest('The body is not valid UTF-8 JSON', [{ field: 'body', message: 'Malformed JSON' }]);
  }
  const parsed = z.strictObject({ state: z.string().nullable() }).safeParse(body);
  if (!parsed.success) {
    throw badRequest('Send {"state": "<the activity\'s state as JSON>"}, or {"state": null} to clear it', [
      { field: 'body.state', message: 'A string of JSON, or null' },
    ]);
  }
  const { state } = parsed.data;
  if (state === null) return null;
  if (state.length > H5P_STATE_MAX_CHARS) {
    throw stateProblem(`At most ${H5P_STATE_MAX_CHARS} characters of state`);
  }
  if (LONE_SURROGATE.test(state)) throw stateProblem('The state holds a lone UTF-16 surrogate');
  try {
    JSON.parse(state);
  } catch {
    throw stateProblem('The state is not JSON (the content type’s getCurrentState(), stringified)');
  }
  return state;
}

interface StateRow {
  state_ciphertext: string;
  saved_at: Date;
}

/** The reader's saved state in the activity, decrypted; nulls while nothing is saved. */
export async function findH5pState(sql: AnySql, activityId: string, userId: string): Promise<SavedH5pState> {
  const [row] = await sql<StateRow[]>`
    select state_ciphertext, saved_at from h5p_user_states
     where activity_id = ${activityId} and user_id = ${userId}`;
  if (!row) return { state: null, savedAt: null };
  return { state: decrypt(row.state_ciphertext, 'h5p_user_states.state'), savedAt: row.saved_at };
}

/** Saves (replaces) the reader's state in the activity, or clears it (`null`). */
export async function saveH5pState(sql: AnySql, activityId: string, userId: string, state: string | null) {
  if (state === null) {
    await sql`delete from h5p_user_states where activity_id = ${activityId} and user_id = ${userId}`;
    return;
  }
  await sql`
    insert into h5p_user_states (activity_id, user_id, state_ciphertext)
    values (${activityId}, ${userId}, ${encrypt(state, 'h5p_user_states.state')})
    on conflict (activity_id, user_id) do update
       set state_ciphertext = excluded.state_ciphertext, saved_at = now()`;
}
