// Exports: `GET reports/compliance/{resource}?format=csv|ndjson|pdf` with a date range, a programme and a
// status: the compliance records for the commission, and the student roster (`students`), the whole list
// in one request. Registrar and admin only, audited as PHI, no-store, an attachment. CSV and NDJSON stream
// whatever the size; a PDF holds at most PDF_ROW_CAP rows (past it, a 400 naming `format`).
// What each resource holds: lib/report-resources.ts; how it streams: lib/reports.ts.
import { z } from 'zod';
import type { Role } from '../lib/access';
import { endpoint } from '../lib/endpoint';
import { badRequest } from '../lib/errors';
import { bytes, streamed } from '../lib/http';
import { EXPORT_RESOURCES, type ExportResourceName } from '../lib/report-resources';
import { csvExport, exportSize, NDJSON, ndjsonExport, PDF_ROW_CAP, pdfExport } from '../lib/reports';

/** The registrar keeps the school's records for the commission; an admin answers its audits. */
const EXPORTERS: readonly Role[] = ['admin', 'registrar'];

const names = Object.keys(EXPORT_RESOURCES) as [ExportResourceName, ...ExportResourceName[]];
const isoDate = z.iso.date();

const ExportParams = z.object({ resource: z.enum(names) });
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

endpoint({
  name: 'reports-compliance-export',
  methods: ['GET'],
  route: 'reports/compliance/{resource}',
  access: EXPORTERS,
  phi: true,
  params: ExportParams,
  query: ExportQuery,
  handler: async function reportsComplianceExport({ sql, params, query }) {
    const resource = EXPORT_RESOURCES[params.resource];
    if (query.status && !resource.statuses.includes(query.status)) {
      const message = `One of ${resource.statuses.join(', ')}`;
      throw badRequest(message, [{ field: 'query.status', message }]);
    }
    if (query.programId && params.resource === 'complaints') {
      const message = 'Complaints belong to no programme';
      throw badRequest(message, [{ field: 'query.programId', message }]);
    }
    const stamp = new Date();
    const file = `${params.resource}-${stamp.toISOString().slice(0, 10)}`;
    if (query.format === 'pdf') {
      const rows = await exportSize(sql, resource, query);
      if (rows > PDF_ROW_CAP) {
        const message = `A PDF export holds at most ${PDF_ROW_CAP} rows (this one has ${rows}): narrow the dates or use format=csv`;
        throw badRequest(message, [{ field: 'query.format', message }]);
      }
      const pdf = await pdfExport(sql, resource, query, stamp);
      return bytes(pdf, 'application/pdf', { 'Content-Disposition': `attachment; filename="${file}.pdf"` });
    }
    if (query.format === 'ndjson') {
      return streamed(ndjsonExport(sql, resource, query), NDJSON, {
        'Content-Disposition': `attachment; filename="${file}.ndjson"`,
      });
    }
    return streamed(csvExport(sql, resource, query), 'text/csv; charset=utf-8', {
      'Content-Disposition': `attachment; filename="${file}.csv"`,
    });
  },
});
