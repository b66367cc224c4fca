-- 0012 keeps a version of the public catalogue, so a client revalidating GET programs or
-- GET programs/{id} with If-None-Match gets its 304 after reading one row, instead of the whole query
-- and a hash of the body. Any statement that changes programmes or modules bumps the version (a
-- statement-level trigger: one bump per statement, whatever the number of rows); the ETag is derived
-- from the version and the URL (lib/http.ts versionTag). No personal data.

-- migrate:up

CREATE TABLE catalogue_version (
  singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  version     bigint NOT NULL,
  changed_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO catalogue_version (version) VALUES (1);

CREATE FUNCTION bump_catalogue_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE catalogue_version SET version = version + 1, changed_at = now();
  RETURN NULL;
END $$;

CREATE TRIGGER programs_bump_catalogue_version
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON programs
  FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();
CREATE TRIGGER modules_bump_catalogue_version
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON modules
  FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();

-- The app reads the version; only the trigger (running as the writer) changes it.
GRANT SELECT, UPDATE ON catalogue_version TO aada_app;

-- migrate:down

DROP TRIGGER modules_bump_catalogue_version ON modules;
DROP TRIGGER programs_bump_catalogue_version ON programs;
DROP FUNCTION bump_catalogue_version();
DROP TABLE catalogue_version;
