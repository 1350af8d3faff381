/**
 * The contact mapping: vCard (RFC 6350, as src/formats/vcard.ts reads it) <-> Graph contact
 * (https://learn.microsoft.com/en-us/graph/api/resources/contact), one table, and what happens
 * to each value when the other side has no room for it. Nothing is dropped: what Exchange
 * cannot hold travels in the extras (named extended properties, split so no size cliff) and
 * comes back to the store unchanged; the store's own way of writing a mapped value (its TYPE
 * and other parameters, itemN groups, PO box, extended address, ORG units beyond the second)
 * travels as a "shadow" line and is written back whenever the value is still the same.
 */
import { ConnectorError } from "../errors.js";
import type { ContactFields, PostalAddress } from "./vcard.js";
import { birthdayVCardValue } from "./vcard.js";
import { birthdayFromGraph, birthdayToGraph, type RefusedValue } from "./contactValidation.js";

type Json = Record<string, unknown>;

export interface MappingRow {
  vcard: string;
  graph: string;
  /** What happens when the other side has no room (a second value, a parameter, a refused value). */
  noRoom: string;
}

/** The table (the bench counts fields preserved against it: `npm run bench -- people`). */
export const CONTACT_MAPPING: readonly MappingRow[] = [
  { vcard: "UID", graph: "(sync key, extended property UmcSyncKey)", noRoom: "a card without UID is keyed by a hash of its content" },
  { vcard: "FN", graph: "displayName", noRoom: "a second FN is an extra; an FN we made up is marked X-UMC-GENERATED-FN and not sent" },
  { vcard: "N (family;given;additional;prefix;suffix)", graph: "surname, givenName, middleName, title, generation", noRoom: "a second N is an extra; SORT-AS and other parameters ride on the shadow" },
  { vcard: "EMAIL (first three)", graph: "emailAddresses[].address", noRoom: "the fourth and later are extras; TYPE/PREF/group ride on the shadow" },
  { vcard: "EMAIL;X-UMC-NAME=", graph: "emailAddresses[].name", noRoom: "Outlook's display name is kept as a parameter, so a store edit never overwrites it" },
  { vcard: "TEL;TYPE=cell (first)", graph: "mobilePhone", noRoom: "a second mobile is an extra" },
  { vcard: "TEL;TYPE=home", graph: "homePhones[]", noRoom: "TYPE and itemN group ride on the shadow" },
  { vcard: "TEL;TYPE=fax / pager (any other type with them)", graph: "(none: v1.0 has no fax or pager field)", noRoom: "kept on the store side: an extra in the extended property, written back to the store unchanged; never a business or home phone in Outlook" },
  { vcard: "TEL (work, main, untyped, custom X-ABLabel)", graph: "businessPhones[]", noRoom: "the type (main, text...) and the itemN group with its X-ABLabel ride on the shadow and the extras, so the store gets them back" },
  { vcard: "ORG (organization;unit;...)", graph: "companyName, department", noRoom: "units beyond the first ride on the shadow" },
  { vcard: "TITLE", graph: "jobTitle", noRoom: "a second TITLE is an extra" },
  { vcard: "ADR;TYPE=work (first)", graph: "businessAddress (street, city, state, postalCode, countryOrRegion)", noRoom: "PO box, extended address, LABEL, GEO ride on the shadow; a second work address is an extra" },
  { vcard: "ADR;TYPE=home (first)", graph: "homeAddress", noRoom: "as businessAddress" },
  { vcard: "ADR (other, first)", graph: "otherAddress", noRoom: "as businessAddress" },
  { vcard: "BDAY (YYYYMMDD, --MMDD)", graph: "birthday (year 1604 = no year)", noRoom: "a date Graph refuses is left out there, kept as an extra, the item flagged (contactValidation.ts)" },
  { vcard: "NOTE", graph: "personalNotes", noRoom: "a second NOTE is an extra" },
  { vcard: "NICKNAME (first)", graph: "nickName", noRoom: "further nicknames are extras" },
  { vcard: "URL (first)", graph: "businessHomePage", noRoom: "further URLs are extras" },
  { vcard: "CATEGORIES", graph: "categories[]", noRoom: "a second CATEGORIES line is an extra" },
  { vcard: "IMPP (first three)", graph: "imAddresses[]", noRoom: "further handles are extras" },
  { vcard: "X-INITIALS", graph: "initials", noRoom: "-" },
  { vcard: "X-FILE-AS", graph: "fileAs", noRoom: "-" },
  { vcard: "X-PHONETIC-FIRST-NAME / -LAST-NAME / -ORG (Apple, Android)", graph: "yomiGivenName / yomiSurname / yomiCompanyName", noRoom: "-" },
  { vcard: "PHOTO", graph: "(extras; the contact photo endpoint is not written yet)", noRoom: "kept whole in the extras, split over several extended properties" },
  { vcard: "any other property (X-ABLabel, X-AVAYA-*, RELATED, ANNIVERSARY, GENDER, KEY, ...)", graph: "(extras)", noRoom: "kept in the extras, in 4.0 form" },
  { vcard: "(none)", graph: "Graph-only fields (spouseName, children, manager, assistantName, officeLocation, profession)", noRoom: "never written by us, so a PATCH keeps them" },
];

export const VCARD_EXTRA_PROP = "String {6B9E9B4C-1F2D-4C55-9E1B-5A3C2D7E8F01} Name UmcVCardExtra";
/**
 * The extras are split over this many string properties of at most EXTRA_CHUNK_CHARS each:
 * enough for the largest card read (MAX_VCARD_BYTES = 256 KiB) twice over, so no cliff.
 */
export const EXTRA_CHUNKS = 20;
export const EXTRA_CHUNK_CHARS = 30_000;
export const EXTRA_PROP_IDS: readonly string[] = Array.from({ length: EXTRA_CHUNKS }, (_, i) => (i === 0 ? VCARD_EXTRA_PROP : `${VCARD_EXTRA_PROP}.${i}`));
/** Graph holds at most three email addresses per contact. */
export const GRAPH_MAX_EMAILS = 3;

const str = (v: unknown) => (typeof v === "string" && v !== "" ? v : undefined);
const strings = (v: unknown) => (Array.isArray(v) ? v.filter((x): x is string => typeof x === "string" && x !== "") : []);

function address(v: unknown): PostalAddress | undefined {
  if (!v || typeof v !== "object") return undefined;
  const a = v as Json;
  const out: PostalAddress = {};
  for (const k of ["street", "city", "state", "postalCode", "countryOrRegion"] as const) { const x = str(a[k]); if (x) out[k] = x; }
  return Object.keys(out).length ? out : undefined;
}

/**
 * The extras as extended properties: chunk 0 is `umc2:<chunks>:<text>`, the rest plain text; a
 * chunk beyond the count is stale and ignored. Every chunk is written (empty ones too), so a
 * PATCH never leaves an old chunk behind.
 */
export function extraProperties(extra: string[], shadows: string[] = []): Array<{ id: string; value: string }> {
  const text = JSON.stringify({ x: extra, s: shadows });
  const parts: string[] = [];
  for (let i = 0; i < text.length; i += EXTRA_CHUNK_CHARS) parts.push(text.slice(i, i + EXTRA_CHUNK_CHARS));
  // MAX_VCARD_BYTES keeps this from happening; were it to, the item is skipped with this reason, nothing cut.
  if (parts.length > EXTRA_CHUNKS) throw new ConnectorError("PAYLOAD_TOO_LARGE", `contact extras of ${text.length} characters exceed ${EXTRA_CHUNKS * EXTRA_CHUNK_CHARS}`);
  const used = Math.max(1, parts.length);
  return EXTRA_PROP_IDS.slice(0, used).map((id, i) => ({ id, value: i === 0 ? `umc2:${used}:${parts[0] ?? ""}` : parts[i]! }));
}

/** Reads the extras back (also main's single-property JSON array). */
export function readExtras(props: Array<{ id: string; value: string }>): { extra: string[]; shadows: string[] } {
  const byId = new Map(props.map((p) => [p.id.toLowerCase(), p.value]));
  const first = byId.get(VCARD_EXTRA_PROP.toLowerCase());
  if (!first) return { extra: [], shadows: [] };
  try {
    const m = first.match(/^umc2:(\d+):/);
    if (!m) {
      const legacy = JSON.parse(first) as unknown;
      return { extra: Array.isArray(legacy) ? legacy.filter((l): l is string => typeof l === "string") : [], shadows: [] };
    }
    const n = Number(m[1]);
    let text = first.slice(m[0].length);
    for (let i = 1; i < n; i++) {
      const part = byId.get(EXTRA_PROP_IDS[i]!.toLowerCase());
      if (part === undefined) return { extra: [], shadows: [] }; // a chunk went missing: not ours to guess
      text += part;
    }
    const v = JSON.parse(text) as { x?: unknown; s?: unknown };
    return { extra: strings(v.x), shadows: strings(v.s) };
  } catch { return { extra: [], shadows: [] }; }
}

/** Graph contact JSON -> the mapped fields (extras from the extended properties when expanded). */
export function fromGraphContact(c: Json): ContactFields {
  const { extra, shadows } = readExtras((c.singleValueExtendedProperties as Array<{ id: string; value: string }> | undefined) ?? []);
  const fields: ContactFields = {
    displayName: str(c.displayName), givenName: str(c.givenName), surname: str(c.surname), middleName: str(c.middleName),
    title: str(c.title), generation: str(c.generation),
    emailAddresses: ((c.emailAddresses as Array<{ address?: string; name?: string }> | undefined) ?? []).filter((e) => str(e.address)).map((e) => ({ address: e.address!, ...(str(e.name) && e.name !== e.address ? { name: e.name } : {}) })),
    businessPhones: strings(c.businessPhones), homePhones: strings(c.homePhones),
    mobilePhone: str(c.mobilePhone), companyName: str(c.companyName), department: str(c.department), jobTitle: str(c.jobTitle),
    businessAddress: address(c.businessAddress), homeAddress: address(c.homeAddress), otherAddress: address(c.otherAddress),
    birthday: birthdayFromGraph(str(c.birthday)),
    personalNotes: str(c.personalNotes),
    nickName: str(c.nickName), businessHomePage: str(c.businessHomePage), initials: str(c.initials), fileAs: str(c.fileAs),
    categories: strings(c.categories).length ? strings(c.categories) : undefined, imAddresses: strings(c.imAddresses).length ? strings(c.imAddresses) : undefined,
    yomiGivenName: str(c.yomiGivenName), yomiSurname: str(c.yomiSurname), yomiCompanyName: str(c.yomiCompanyName),
    extra, ...(shadows.length ? { shadows } : {}),
  };
  return dropUndefined(fields);
}

/**
 * The fields -> a full Graph property set. Absent fields are sent as null or empty so a PATCH
 * clears what the store removed; what Graph cannot hold goes to the extras; a value Graph would
 * refuse is left out and reported in `refused` (the caller flags the item).
 */
export function toGraphContact(f: ContactFields): { props: Json; extra: string[]; shadows: string[]; refused: RefusedValue[] } {
  const extra = [...f.extra, ...f.emailAddresses.slice(GRAPH_MAX_EMAILS).map((e) => `EMAIL:${e.address}`)];
  const refused: RefusedValue[] = [];
  let birthday: string | null = null;
  if (f.birthday) {
    const b = birthdayToGraph(f.birthday);
    // Left out of Exchange, kept on the store: the BDAY line travels in the extras.
    if ("refused" in b) { refused.push({ field: "birthday", message: b.refused }); extra.push(`BDAY:${birthdayVCardValue(f.birthday)}`); }
    else birthday = b.value;
  }
  return {
    extra,
    shadows: f.shadows ?? [],
    refused,
    props: {
      displayName: f.displayName || null, givenName: f.givenName || null, surname: f.surname || null, middleName: f.middleName || null,
      title: f.title || null, generation: f.generation || null,
      // Outlook shows "name (address)"; without a name of ours Graph's is the address itself.
      emailAddresses: f.emailAddresses.slice(0, GRAPH_MAX_EMAILS).map((e) => ({ address: e.address, name: e.name ?? e.address })),
      businessPhones: f.businessPhones, homePhones: f.homePhones, mobilePhone: f.mobilePhone || null,
      companyName: f.companyName || null, department: f.department || null, jobTitle: f.jobTitle || null,
      businessAddress: f.businessAddress ?? {}, homeAddress: f.homeAddress ?? {}, otherAddress: f.otherAddress ?? {},
      birthday, personalNotes: f.personalNotes || null,
      nickName: f.nickName || null, businessHomePage: f.businessHomePage || null, initials: f.initials || null, fileAs: f.fileAs || null,
      categories: f.categories ?? [], imAddresses: f.imAddresses ?? [],
      yomiGivenName: f.yomiGivenName || null, yomiSurname: f.yomiSurname || null, yomiCompanyName: f.yomiCompanyName || null,
    },
  };
}

function dropUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
