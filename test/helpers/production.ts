// A production configuration as lib/config.ts requires it, with fresh random secrets. Files that check what
// production refuses, or how it behaves, start from it and change only what they test.
import { randomBytes } from 'node:crypto';

const freshKey = () => randomBytes(32).toString('base64');

/** Every setting production requires: stand-ins for Azure's addresses, fresh keys; DB_SSL left to its default. */
export function productionSettings() {
  return {
    APP_ENV: 'production',
    APP_PUBLIC_URL: 'https://portal.example.test',
    CORS_ALLOWED_ORIGINS: 'https://portal.example.test',
    BLOB_ENDPOINT: 'https://stfilesexample.blob.core.windows.net',
    // "stand-in" in base64: only read when a PDF is sealed, which these files never do.
    PDF_SEAL_CERTIFICATE: 'c3RhbmQtaW4=',
    H5P_ASSET_KEY: freshKey(),
    DB_HOST: 'db.example.test',
    DB_NAME: 'lms',
    DB_USER: 'app',
    DB_MAX_CONNECTIONS: '100',
    DB_RESERVED_CONNECTIONS: '20',
    MAX_INSTANCES: '1',
    TIMER_INSTANCES: '0',
    PII_ENCRYPTION_KEYS: `prod1:${freshKey()}`,
    PII_BLIND_INDEX_KEY: freshKey(),
    JWT_SIGNING_KEY: freshKey(),
  };
}
