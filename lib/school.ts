// The school as its documents print it: its name, and the time zone (Atlanta's) in which a person reads
// the dates on them. Used by every printed document (transcripts now; statements, receipts, agreements).

export const SCHOOL = { name: 'Atlanta Academy of Dental Assisting', timeZone: 'America/New_York' } as const;

/** "1 December 2026": day, month in words, year — unambiguous on both sides of the Atlantic. */
const dayIn = (timeZone: string) =>
  new Intl.DateTimeFormat('en-GB', { day: 'numeric', month: 'long', year: 'numeric', timeZone });

const SCHOOL_DAY = dayIn(SCHOOL.timeZone);
const CALENDAR_DAY = dayIn('UTC');

/** The day an instant fell on at the school, as a person reads it ("1 December 2026"). */
export const schoolDate = (instant: Date): string => SCHOOL_DAY.format(instant);

/**
 * A calendar date (a PostgreSQL `date`, which postgres.js gives as midnight UTC) the same way: read in
 * UTC, so no time zone moves it to the day before.
 */
export const calendarDate = (date: Date): string => CALENDAR_DAY.format(date);

const SCHOOL_MINUTE = new Intl.DateTimeFormat('en-GB', {
  day: 'numeric',
  month: 'long',
  year: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
  timeZone: SCHOOL.timeZone,
});

/** An instant as a person at the school reads it, to the minute ("15 December 2026 at 10:30"). */
export const schoolDateTime = (instant: Date): string => SCHOOL_MINUTE.format(instant);
