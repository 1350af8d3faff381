/**
 * Exchange side of the contacts sync for one mailbox: the contact folder, its delta, and
 * contact create / update / delete (https://learn.microsoft.com/en-us/graph/api/resources/contact).
 *
 * Mapping: the vCard-representable fields of src/formats/vcard.ts <-> Graph contact properties.
 * Graph-only properties (IM addresses, spouse, ...) are never written by us, so a PATCH keeps
 * them; vCard properties Graph has no field for travel in a named extended property
 * (UmcVCardExtra) and are written back to the store unchanged. Contact delta supports $select
 * only (contact-delta), so extended properties are read with a GET when they are needed.
 */
import { ConnectorError } from "../errors.js";
import { birthdayVCardValue, type ContactFields, type PostalAddress } from "../formats/vcard.js";
import { birthdayFromGraph, birthdayToGraph, type RefusedValue } from "../formats/contactValidation.js";
import type { GraphClient } from "./client.js";
import { SYNC_KEY_PROP } from "./voicemail.js";

export const VCARD_EXTRA_PROP = "String {6B9E9B4C-1F2D-4C55-9E1B-5A3C2D7E8F01} Name UmcVCardExtra";
/** Graph holds at most three email addresses per contact. */
export const GRAPH_MAX_EMAILS = 3;
/** A single-value string extended property holds well under this; larger extras stay on the store only. */
const MAX_EXTRA_CHARS = 30_000;

export interface GraphContact {
  id: string;
  lastModifiedDateTime?: string;
  fields: ContactFields;
}

type Json = Record<string, unknown>;

const str = (v: unknown) => (typeof v === "string" && v !== "" ? v : undefined);

function address(v: unknown): PostalAddress | undefined {
  if (!v || typeof v !== "object") return undefined;
  const a = v as Json;
  const out: PostalAddress = {};
  for (const k of ["street", "city", "state", "postalCode", "countryOrRegion"] as const) { const x = str(a[k]); if (x) out[k] = x; }
  return Object.keys(out).length ? out : undefined;
}

/** Graph contact JSON -> the mapped fields (extras from the extended property when expanded). */
export function fromGraphContact(c: Json): ContactFields {
  const props = (c.singleValueExtendedProperties as Array<{ id: string; value: string }> | undefined) ?? [];
  const extraRaw = props.find((p) => p.id.toLowerCase() === VCARD_EXTRA_PROP.toLowerCase())?.value;
  let extra: string[] = [];
  if (extraRaw) { try { const x = JSON.parse(extraRaw) as unknown; if (Array.isArray(x)) extra = x.filter((l): l is string => typeof l === "string"); } catch { /* not ours: ignore */ } }
  const fields: ContactFields = {
    displayName: str(c.displayName), givenName: str(c.givenName), surname: str(c.surname), middleName: str(c.middleName),
    title: str(c.title), generation: str(c.generation),
    emailAddresses: ((c.emailAddresses as Array<{ address?: string; name?: string }> | undefined) ?? []).filter((e) => str(e.address)).map((e) => ({ address: e.address! })),
    businessPhones: ((c.businessPhones as string[] | undefined) ?? []).filter(Boolean),
    homePhones: ((c.homePhones as string[] | undefined) ?? []).filter(Boolean),
    mobilePhone: str(c.mobilePhone), companyName: str(c.companyName), department: str(c.department), jobTitle: str(c.jobTitle),
    businessAddress: address(c.businessAddress), homeAddress: address(c.homeAddress), otherAddress: address(c.otherAddress),
    birthday: birthdayFromGraph(str(c.birthday)),
    personalNotes: str(c.personalNotes), extra,
  };
  return dropUndefined(fields);
}

/**
 * The fields -> a full Graph property set. Absent fields are sent as null or empty so a PATCH
 * clears what the store removed; emails beyond Graph's three stay in the extras.
 */
export function toGraphContact(f: ContactFields): { props: Json; extra: string[]; refused: RefusedValue[] } {
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
    refused,
    props: {
      displayName: f.displayName || null, givenName: f.givenName || null, surname: f.surname || null, middleName: f.middleName || null,
      title: f.title || null, generation: f.generation || null,
      emailAddresses: f.emailAddresses.slice(0, GRAPH_MAX_EMAILS).map((e) => ({ address: e.address, name: e.name ?? e.address })),
      businessPhones: f.businessPhones, homePhones: f.homePhones, mobilePhone: f.mobilePhone || null,
      companyName: f.companyName || null, department: f.department || null, jobTitle: f.jobTitle || null,
      businessAddress: f.businessAddress ?? {}, homeAddress: f.homeAddress ?? {}, otherAddress: f.otherAddress ?? {},
      birthday, personalNotes: f.personalNotes || null,
    },
  };
}

function dropUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

export interface ContactChanges {
  full: boolean;
  upserted: GraphContact[];
  removed: string[];
  deltaLink: string;
}

export class ExchangeContacts {
  constructor(private readonly graph: GraphClient, private readonly userId: string) {}

  private get user() { return `/users/${encodeURIComponent(this.userId)}`; }

  /** "" or "contacts": the default folder (well-known name); otherwise a folder under it by name, created when missing. */
  async ensureFolder(name: string): Promise<string> {
    if (!name || name.toLowerCase() === "contacts") return (await this.graph.request<{ id: string }>({ method: "GET", url: `${this.user}/contactFolders/contacts`, mailbox: this.userId })).id;
    const find = async () => (await this.graph.request<{ value: Array<{ id: string; displayName: string }> }>({ method: "GET", url: `${this.user}/contactFolders?$top=250`, mailbox: this.userId })).value.find((f) => f.displayName.toLowerCase() === name.toLowerCase())?.id;
    const existing = await find();
    if (existing) return existing;
    try {
      return (await this.graph.request<{ id: string }>({ method: "POST", url: `${this.user}/contactFolders`, body: { displayName: name }, mailbox: this.userId })).id;
    } catch (e) {
      const again = await find();
      if (again) return again;
      throw e;
    }
  }

  async changes(folderId: string, deltaLink: string | undefined, pageSize = 100): Promise<ContactChanges> {
    let url: string | undefined = deltaLink ?? `${this.user}/contactFolders/${encodeURIComponent(folderId)}/contacts/delta`;
    const upserted = new Map<string, GraphContact>();
    const removed = new Set<string>();
    let next = "";
    while (url) {
      const page: { value: Json[]; "@odata.nextLink"?: string; "@odata.deltaLink"?: string } =
        await this.graph.request({ method: "GET", url, headers: { Prefer: `odata.maxpagesize=${pageSize}` }, mailbox: this.userId });
      for (const c of page.value) {
        const id = String(c.id);
        // Replays happen: the last word on an id wins (delta-query-overview).
        if (c["@removed"]) { removed.add(id); upserted.delete(id); }
        else { upserted.set(id, { id, lastModifiedDateTime: str(c.lastModifiedDateTime), fields: fromGraphContact(c) }); removed.delete(id); }
      }
      url = page["@odata.nextLink"];
      if (page["@odata.deltaLink"]) next = page["@odata.deltaLink"];
    }
    if (!next) throw new ConnectorError("GRAPH_REQUEST_FAILED", "contact delta ended without a deltaLink", { mailboxId: this.userId });
    return { full: deltaLink === undefined, upserted: [...upserted.values()], removed: [...removed], deltaLink: next };
  }

  /** One contact with our extended properties (the extras are not in delta). */
  async get(id: string): Promise<GraphContact> {
    const expand = `singleValueExtendedProperties($filter=id eq '${VCARD_EXTRA_PROP}' or id eq '${SYNC_KEY_PROP}')`;
    const c = await this.graph.request<Json>({ method: "GET", url: `${this.user}/contacts/${encodeURIComponent(id)}?$expand=${encodeURIComponent(expand)}`, mailbox: this.userId });
    return { id, lastModifiedDateTime: str(c.lastModifiedDateTime), fields: fromGraphContact(c) };
  }

  async create(folderId: string, syncKey: string, f: ContactFields): Promise<GraphContact> {
    const { props, extra } = toGraphContact(f);
    const c = await this.graph.request<Json>({
      method: "POST", url: `${this.user}/contactFolders/${encodeURIComponent(folderId)}/contacts`, mailbox: this.userId,
      body: { ...props, singleValueExtendedProperties: [{ id: SYNC_KEY_PROP, value: syncKey }, { id: VCARD_EXTRA_PROP, value: extraValue(extra) }] },
    });
    return { id: String(c.id), lastModifiedDateTime: str(c.lastModifiedDateTime), fields: { ...fromGraphContact(c), extra } };
  }

  async update(id: string, f: ContactFields): Promise<GraphContact> {
    const { props, extra } = toGraphContact(f);
    const c = await this.graph.request<Json>({
      method: "PATCH", url: `${this.user}/contacts/${encodeURIComponent(id)}`, mailbox: this.userId,
      body: { ...props, singleValueExtendedProperties: [{ id: VCARD_EXTRA_PROP, value: extraValue(extra) }] },
    });
    return { id, lastModifiedDateTime: str(c.lastModifiedDateTime), fields: { ...fromGraphContact(c), extra } };
  }

  async remove(id: string): Promise<void> {
    await this.graph.request({ method: "DELETE", url: `${this.user}/contacts/${encodeURIComponent(id)}`, mailbox: this.userId });
  }

  async findBySyncKey(folderId: string, syncKey: string): Promise<GraphContact | undefined> {
    const filter = `singleValueExtendedProperties/Any(ep: ep/id eq '${SYNC_KEY_PROP}' and ep/value eq '${syncKey.replace(/'/g, "''")}')`;
    const r = await this.graph.request<{ value: Json[] }>({ method: "GET", url: `${this.user}/contactFolders/${encodeURIComponent(folderId)}/contacts?$filter=${encodeURIComponent(filter)}&$top=2`, mailbox: this.userId });
    const c = r.value[0];
    return c && { id: String(c.id), lastModifiedDateTime: str(c.lastModifiedDateTime), fields: fromGraphContact(c) };
  }
}

function extraValue(extra: string[]): string {
  const v = JSON.stringify(extra);
  // A huge extra (a PHOTO) would not fit: it stays on the store, where it is kept anyway.
  return v.length <= MAX_EXTRA_CHARS ? v : JSON.stringify(extra.filter((l) => l.length < 2000));
}
