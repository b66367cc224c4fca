-- 0009 one-time tokens, shared by every emailed link, and the device of a sign-in attempt.
--
-- one_time_tokens holds every single-use token the API hands out (lib/one-time-links.ts): the
-- registration link and the registration token that follows it, the sign-in unlock link, and later
-- invitations and password resets. Only the SHA-256 of a token is stored; a token belongs to one
-- user or one registration request and has one purpose; a new token for the same purpose and owner
-- replaces the previous one (the partial unique indexes), so only the latest link works.
-- Registration kept its token hash in registration_requests.token_hash: live tokens move here, and
-- the column goes.
--
-- login_attempts.device_id is the nonce of the signed device cookie a browser presented with the
-- attempt (lib/throttle.ts): failures are counted per device too, so a trusted device that keeps
-- failing loses its exemption from the account ceiling. A random UUID, not personal data; the
-- existing (account_key, attempted_at) index serves its look-ups.

-- migrate:up

CREATE TABLE one_time_tokens (
  id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  purpose                  text NOT NULL CHECK (purpose ~ '^[a-z_]{1,64}$'),
  token_hash               bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
  user_id                  uuid REFERENCES users (id) ON DELETE CASCADE,
  registration_request_id  uuid REFERENCES registration_requests (id) ON DELETE CASCADE,
  issued_at                timestamptz NOT NULL DEFAULT now(),
  expires_at               timestamptz NOT NULL,
  used_at                  timestamptz,
  CHECK (num_nonnulls(user_id, registration_request_id) = 1),
  CHECK (expires_at > issued_at)
);

CREATE UNIQUE INDEX one_time_tokens_user_purpose_key
  ON one_time_tokens (purpose, user_id) WHERE user_id IS NOT NULL;
CREATE UNIQUE INDEX one_time_tokens_registration_purpose_key
  ON one_time_tokens (purpose, registration_request_id) WHERE registration_request_id IS NOT NULL;
-- The hourly maintenance deletes tokens by expiry.
CREATE INDEX idx_one_time_tokens_expires ON one_time_tokens (expires_at);

INSERT INTO one_time_tokens (purpose, token_hash, registration_request_id, issued_at, expires_at)
SELECT CASE status WHEN 'pending' THEN 'registration_verify' ELSE 'registration_complete' END,
       token_hash, id, least(updated_at, expires_at - interval '1 second'), expires_at
  FROM registration_requests
 WHERE status IN ('pending', 'verified') AND expires_at > now();

ALTER TABLE registration_requests DROP COLUMN token_hash;

ALTER TABLE login_attempts ADD COLUMN device_id uuid;

-- Ephemeral like the other sign-in tables: the app creates, redeems and prunes them.
GRANT SELECT, INSERT, UPDATE, DELETE ON one_time_tokens TO aada_app;

-- migrate:down

ALTER TABLE login_attempts DROP COLUMN device_id;

ALTER TABLE registration_requests ADD COLUMN token_hash bytea;
UPDATE registration_requests r
   SET token_hash = t.token_hash
  FROM one_time_tokens t
 WHERE t.registration_request_id = r.id
   AND t.used_at IS NULL
   AND t.purpose = CASE r.status WHEN 'pending' THEN 'registration_verify' ELSE 'registration_complete' END;
-- Requests without a live token get a hash nobody holds the token of.
UPDATE registration_requests
   SET token_hash = sha256(convert_to(gen_random_uuid()::text, 'UTF8'))
 WHERE token_hash IS NULL;
ALTER TABLE registration_requests ALTER COLUMN token_hash SET NOT NULL;
ALTER TABLE registration_requests ADD CONSTRAINT registration_requests_token_hash_key UNIQUE (token_hash);

DROP TABLE one_time_tokens;
