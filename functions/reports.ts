// Exports: `GET reports/compliance/{resource}?format=csv|ndjson|pdf` with a date range, a programme and a
// status: the compliance records for the commission, and the student roster (`students`), the whole list
// in one request. Registrar and admin only. `GET reports/finance/{resource}`: the ledger, payments and
// withdrawals with their refunds, finance and admin only (least privilege: the registrar keeps academic
// records and has no use for money; finance none for attendance). Both audited as PHI, no-store, an
// attachment. CSV and NDJSON stream whatever the size; a PDF holds at most PDF_ROW_CAP rows (past it, a
// 400 naming `format`). What each resource holds: lib/report-resources.ts; how it streams: lib/reports.ts.
import { z } from 'zod';
import type { Role } from '../lib/access';
import { endpoint, mediaBody, type ReadInput } from '../lib/endpoint';
import {
  EXPORT_RESOURCES,
  type ExportResourceName,
  FINANCE_EXPORT_RESOURCES,
  type FinanceExportResourceName,
} from '../lib/report-resources';
import { EXPORT_MEDIA, exportReply } from '../lib/reports';

/** The registrar keeps the school's records for the commission; an admin answers its audits. */
const EXPORTERS: readonly Role[] = ['admin', 'registrar'];
/** Finance keeps the school's accounts; an admin reads every ledger (lib/ledger.ts) and answers audits. */
const FINANCE_EXPORTERS: readonly Role[] = ['admin', 'finance'];

const isoDate = z.iso.date();
const namesOf = <K extends string>(resources: Record<K, unknown>) => Object.keys(resources) as [K, ...K[]];

const ExportQuery = z
  .object({
    format: z.enum(['csv', 'ndjson', 'pdf']).default('csv'),
    from: isoDate.optional(),
    to: isoDate.optional(),
    programId: z.uuid().optional(),
    status: z
      .string()
      .max(40)
      .regex(/^[a-z_]+$/, 'A status of the resource')
      .optional(),
  })
  .refine((query) => !query.from || !query.to || query.from <= query.to, {
    message: 'Must be on or after from',
    path: ['to'],
  });
type ExportQuery = z.infer<typeof ExportQuery>;

const ComplianceParams = z.object({ resource: z.enum(namesOf(EXPORT_RESOURCES)) });
const FinanceParams = z.object({ resource: z.enum(namesOf(FINANCE_EXPORT_RESOURCES)) });

async function reportsComplianceExport({
  sql,
  params,
  query,
}: ReadInput<{ resource: ExportResourceName }, ExportQuery>) {
  return exportReply(sql, params.resource, EXPORT_RESOURCES[params.resource], query);
}

async function reportsFinanceExport({
  sql,
  params,
  query,
}: ReadInput<{ resource: FinanceExportResourceName }, ExportQuery>) {
  return exportReply(sql, params.resource, FINANCE_EXPORT_RESOURCES[params.resource], query);
}

endpoint({
  name: 'reports-compliance-export',
  methods: ['GET'],
  route: 'reports/compliance/{resource}',
  access: EXPORTERS,
  phi: true,
  params: ComplianceParams,
  query: ExportQuery,
  responses: { 200: mediaBody(...EXPORT_MEDIA) },
  handler: reportsComplianceExport,
});

endpoint({
  name: 'reports-finance-export',
  methods: ['GET'],
  route: 'reports/finance/{resource}',
  access: FINANCE_EXPORTERS,
  phi: true,
  params: FinanceParams,
  query: ExportQuery,
  responses: { 200: mediaBody(...EXPORT_MEDIA) },
  handler: reportsFinanceExport,
});
