// Ended sessions, as each instance knows them. Access tokens are verified without a database round
// trip, so on their own they would stay valid for their whole 15 minutes after a logout, a
// deactivation, a role change or a password change. Every such event
// revokes the session's refresh-token family; each instance reads the families ended in the last
// token lifetime at most once every SESSION_REVOCATION_POLL_SECONDS, and a token of an ended session
// is refused. One small indexed query per instance per interval, instead of one per request.
import { ACCESS_TOKEN_TTL_SECONDS } from './auth';
import { config } from './config';
import { db } from './db';

let endedSessions = new Set<string>();
let refreshedAt = Number.NEGATIVE_INFINITY;
let refreshing: Promise<void> | undefined;

async function reload(): Promise<void> {
  // Rotation also sets revoked_at, but a rotated token's family lives on: only real endings count.
  const rows = await db()<{ family_id: string }[]>`
    select distinct family_id from refresh_tokens
     where revoke_reason <> 'rotated'
       and revoked_at > now() - make_interval(secs => ${ACCESS_TOKEN_TTL_SECONDS + 60})`;
  endedSessions = new Set(rows.map((row) => row.family_id));
}

/** Whether the session an access token belongs to has ended (checked against a recent copy). */
export async function isSessionEnded(sessionId: string): Promise<boolean> {
  const maxAgeMs = config().SESSION_REVOCATION_POLL_SECONDS * 1000;
  if (performance.now() - refreshedAt >= maxAgeMs) {
    refreshing ??= reload()
      .then(() => {
        refreshedAt = performance.now();
      })
      .finally(() => {
        refreshing = undefined;
      });
    await refreshing;
  }
  return endedSessions.has(sessionId);
}
