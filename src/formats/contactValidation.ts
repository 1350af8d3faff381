/**
 * Values a Graph contact would refuse, found before Graph is asked (issue 18, point 3): each is
 * normalised or left out of the Exchange contact, the item is flagged with the reason, and the
 * store keeps the value (it stays in the card's extras), so a contact is never skipped whole for
 * one field.
 *
 * birthday: an Edm.DateTimeOffset (https://learn.microsoft.com/en-us/graph/api/resources/contact,
 * "birthday"); Graph answers 400 for a date that does not exist (2023-02-30) and Exchange keeps
 * dates from 1601 on (its FILETIME epoch). A birthday without a year (vCard `--0415`, RFC 6350
 * section 4.3.1) is written the way Outlook and Apple mark a missing year, as year 1604, and a
 * 1604 birthday reads back as year-less.
 */

/** The year Outlook and Apple Contacts store for "no year". */
export const NO_YEAR = 1604;

export interface RefusedValue { field: string; message: string }

/** A real calendar date (no 30 February, no month 13). */
export function isRealDate(y: number, m: number, d: number): boolean {
  const t = new Date(Date.UTC(y, m - 1, d));
  return t.getUTCFullYear() === y && t.getUTCMonth() === m - 1 && t.getUTCDate() === d;
}

/** Card birthday (YYYY-MM-DD or ---MM-DD) -> Graph's value, or a reason it cannot go. */
export function birthdayToGraph(b: string): { value: string } | { refused: string } {
  const yearless = b.match(/^---(\d{2})-(\d{2})$/);
  if (yearless) {
    const [m, d] = [Number(yearless[1]), Number(yearless[2])];
    // 29 February without a year is a real birthday; 1604 is a leap year, so it fits.
    return isRealDate(NO_YEAR, m, d) ? { value: `${NO_YEAR}-${yearless[1]}-${yearless[2]}T00:00:00Z` } : { refused: `birthday --${yearless[1]}${yearless[2]} is not a day of the year` };
  }
  const full = b.match(/^(\d{4})-(\d{2})-(\d{2})$/);
  if (!full) return { refused: `birthday '${b.slice(0, 20)}' is not a date` };
  const [y, m, d] = [Number(full[1]), Number(full[2]), Number(full[3])];
  if (!isRealDate(y, m, d)) return { refused: `birthday ${b} does not exist` };
  if (y < 1601) return { refused: `birthday ${b} is before 1601, the earliest date Exchange keeps` };
  return { value: `${b}T00:00:00Z` };
}

/** Graph's birthday -> the card's (year 1604 is "no year"); undefined for what is not a date. */
export function birthdayFromGraph(v: string | undefined): string | undefined {
  const m = v?.match(/^(\d{4})-(\d{2})-(\d{2})/);
  if (!m) return undefined;
  return Number(m[1]) === NO_YEAR ? `---${m[2]}-${m[3]}` : `${m[1]}-${m[2]}-${m[3]}`;
}
