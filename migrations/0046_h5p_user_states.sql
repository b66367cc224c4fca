-- migrate:up
-- What a student has done in an H5P activity (lib/h5p-state.ts): the content type's own state
-- (getCurrentState(): answers given, the page reached), saved by the player page through its signed grant,
-- which names the student, and given back when the activity opens again. One row per activity and
-- student (`id` is the key keys:rotate pages by); a new package under the same key is a new activity, so its state starts afresh (the old
-- state may not fit the new content). The state is encrypted (it may hold free-text answers).
CREATE TABLE h5p_user_states (
  id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  activity_id       uuid NOT NULL CONSTRAINT h5p_user_states_activity_id_fkey REFERENCES h5p_activities (id) ON DELETE RESTRICT,
  user_id           uuid NOT NULL CONSTRAINT h5p_user_states_user_id_fkey REFERENCES users (id) ON DELETE CASCADE,
  state_ciphertext  text NOT NULL,
  saved_at          timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT h5p_user_states_activity_user_key UNIQUE (activity_id, user_id)
);

GRANT SELECT, INSERT, DELETE ON h5p_user_states TO aada_app;
GRANT UPDATE (state_ciphertext, saved_at) ON h5p_user_states TO aada_app;

-- migrate:down
DROP TABLE h5p_user_states;
