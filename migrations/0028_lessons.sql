-- migrate:up
-- Lessons (lib/lessons.ts): one Markdown lesson per module, versioned. Every save is a new row of
-- lesson_versions (the next number of its module, its author and time), never changed afterwards: the
-- app may read and append, not update or delete. The sanitised HTML is rendered once, at save, and kept
-- with the renderer's version (lib/lesson-html.ts RENDERER_VERSION); HTML of an older renderer is rendered
-- again when read. Which version students read is chosen explicitly: lesson_publications holds one row
-- per published module naming its version (a composite key keeps it a version of the same module), who
-- published it and when; publishing another version updates that row, the audit trail keeps the history.
CREATE TABLE lesson_versions (
  id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  module_id         uuid NOT NULL CONSTRAINT lesson_versions_module_id_fkey REFERENCES modules (id) ON DELETE RESTRICT,
  version           integer NOT NULL CONSTRAINT lesson_versions_version_check CHECK (version >= 1),
  title             text NOT NULL CONSTRAINT lesson_versions_title_check CHECK (btrim(title) <> '' AND length(title) <= 200),
  markdown          text NOT NULL CONSTRAINT lesson_versions_markdown_check CHECK (length(markdown) <= 200000),
  html              text NOT NULL,
  renderer_version  integer NOT NULL CONSTRAINT lesson_versions_renderer_version_check CHECK (renderer_version >= 1),
  created_by        uuid NOT NULL CONSTRAINT lesson_versions_created_by_fkey REFERENCES users (id) ON DELETE RESTRICT,
  created_at        timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT lesson_versions_module_version_key UNIQUE (module_id, version),
  CONSTRAINT lesson_versions_id_module_key UNIQUE (id, module_id)
);

CREATE TABLE lesson_publications (
  module_id     uuid PRIMARY KEY CONSTRAINT lesson_publications_module_id_fkey REFERENCES modules (id) ON DELETE RESTRICT,
  version_id    uuid NOT NULL,
  published_by  uuid NOT NULL CONSTRAINT lesson_publications_published_by_fkey REFERENCES users (id) ON DELETE RESTRICT,
  published_at  timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT lesson_publications_version_fkey FOREIGN KEY (version_id, module_id)
    REFERENCES lesson_versions (id, module_id) ON DELETE RESTRICT
);

GRANT SELECT, INSERT ON lesson_versions TO aada_app;
GRANT SELECT, INSERT, UPDATE ON lesson_publications TO aada_app;

-- migrate:down
DROP TABLE lesson_publications;
DROP TABLE lesson_versions;
