-- migrate:up
-- Key rotation (dev/rotate-keys.ts) pages every table holding ciphertext by a single-column uuid
-- primary key, and 0029 keyed the LRS's documents by their blind index alone. The blind index stays
-- the document's identity (a unique constraint: ON CONFLICT still finds it); the row gets a uuid key.
ALTER TABLE xapi_documents ADD COLUMN id uuid NOT NULL DEFAULT gen_random_uuid();
ALTER TABLE xapi_documents DROP CONSTRAINT xapi_documents_pkey;
ALTER TABLE xapi_documents ADD CONSTRAINT xapi_documents_pkey PRIMARY KEY (id);
ALTER TABLE xapi_documents ADD CONSTRAINT xapi_documents_key_hash_key UNIQUE (key_hash);

-- migrate:down
ALTER TABLE xapi_documents DROP CONSTRAINT xapi_documents_key_hash_key;
ALTER TABLE xapi_documents DROP CONSTRAINT xapi_documents_pkey;
ALTER TABLE xapi_documents ADD CONSTRAINT xapi_documents_pkey PRIMARY KEY (key_hash);
ALTER TABLE xapi_documents DROP COLUMN id;
