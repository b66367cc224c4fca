// A programme as the catalogue and the management routes both show it.

export interface ProgramRow {
  id: string;
  code: string;
  name: string;
  credential_level: string;
  total_clock_hours: number;
  description: string | null;
}

/** The programme's public fields, as the catalogue serves them. */
export const toProgramView = (row: ProgramRow) => ({
  id: row.id,
  code: row.code,
  name: row.name,
  credentialLevel: row.credential_level,
  totalClockHours: row.total_clock_hours,
  description: row.description,
});
