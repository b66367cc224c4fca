// The public programme catalogue: what the school offers, with each programme's modules in order.
// Public and cacheable (`public, max-age=300` with an ETag); nothing here is personal.
import { z } from 'zod';
import { endpoint } from '../lib/endpoint';
import { notFound } from '../lib/errors';
import { json } from '../lib/http';
import { limitSchema, nextLink, pageOf } from '../lib/pagination';
import { cataloguePageQuery, catalogueVersion, PROGRAM_ORDER, type ProgramRow, toProgramView } from '../lib/programs';

const CatalogueQuery = z.object({
  limit: limitSchema,
  cursor: PROGRAM_ORDER.cursor,
});

endpoint({
  name: 'catalogue-programs-list',
  methods: ['GET'],
  route: 'programs',
  access: 'public',
  cache: 'public',
  version: catalogueVersion,
  query: CatalogueQuery,
  handler: async function catalogueProgramsList({ sql, query, request }) {
    const rows = await cataloguePageQuery(sql, query.cursor, query.limit);
    const page = pageOf(rows, query.limit, (read) => read.map(toProgramView));
    return json(page, 200, nextLink(request.url, page.next));
  },
});

const ProgramParams = z.object({ id: z.uuid() });

interface ProgramWithModulesRow extends ProgramRow {
  modules: {
    id: string;
    code: string;
    title: string;
    description: string | null;
    deliveryType: string;
    clockHours: number;
    requiresInPerson: boolean;
    position: number;
  }[];
}

endpoint({
  name: 'catalogue-programs-get',
  methods: ['GET'],
  route: 'programs/{id}',
  access: 'public',
  cache: 'public',
  version: catalogueVersion,
  params: ProgramParams,
  handler: async function catalogueProgramsGet({ sql, params }) {
    // One round trip: the programme and its ordered modules aggregated by the database.
    const [row] = await sql<ProgramWithModulesRow[]>`
      select p.id, p.code, p.name, p.credential_level, p.total_clock_hours, p.description,
             coalesce(
               (select json_agg(json_build_object(
                         'id', m.id, 'code', m.code, 'title', m.title, 'description', m.description,
                         'deliveryType', m.delivery_type, 'clockHours', m.clock_hours,
                         'requiresInPerson', m.requires_in_person, 'position', m.position)
                       order by m.position)
                  from modules m where m.program_id = p.id),
               '[]'::json) as modules
        from programs p
       where p.id = ${params.id} and p.status = 'active'`;
    if (!row) throw notFound('No such programme in the catalogue');
    return json({ ...toProgramView(row), modules: row.modules });
  },
});
