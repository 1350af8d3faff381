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
import { isConnectorError } from "../errors.js";
import { sniffImageType, type Photo } from "../formats/contactPhoto.js";
import type { ContactFields } from "../formats/vcard.js";
import { EXTRA_PROP_IDS, extraProperties, fromGraphContact, toGraphContact } from "../formats/contactMapping.js";
import type { GraphClient } from "./client.js";
import { readDelta } from "./delta.js";
import { SYNC_KEY_PROP } from "./voicemail.js";
import type { ContactChanges, GraphContact } from "../sync/ports.js";

export type { ContactChanges, GraphContact } from "../sync/ports.js";

export { VCARD_EXTRA_PROP, GRAPH_MAX_EMAILS, fromGraphContact, toGraphContact } from "../formats/contactMapping.js";

type Json = Record<string, unknown>;

/** PidLidHasPicture (PSETID_Address, LID 0x8015, PT_BOOLEAN) as Graph names an extended property. */
export const HAS_PICTURE_PROP = "Boolean {00062004-0000-0000-C000-000000000046} Id 0x8015";

const str = (v: unknown) => (typeof v === "string" && v !== "" ? v : undefined);

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
    const firstUrl = `${this.user}/contactFolders/${encodeURIComponent(folderId)}/contacts/delta`;
    return readDelta<Json, GraphContact>(this.graph, { deltaLink, firstUrl, pageSize, mailbox: this.userId, what: "contact delta",
      map: (c) => ({ id: String(c.id), lastModifiedDateTime: str(c.lastModifiedDateTime), fields: fromGraphContact(c) }) });
  }

  /** One contact with our extended properties (the extras are not in delta). */
  async get(id: string): Promise<GraphContact> {
    const expand = `singleValueExtendedProperties($filter=${[...EXTRA_PROP_IDS, SYNC_KEY_PROP].map((id) => `id eq '${id}'`).join(" or ")})`;
    const c = await this.graph.request<Json>({ method: "GET", url: `${this.user}/contacts/${encodeURIComponent(id)}?$expand=${encodeURIComponent(expand)}`, mailbox: this.userId });
    return { id, lastModifiedDateTime: str(c.lastModifiedDateTime), fields: fromGraphContact(c) };
  }

  async create(folderId: string, syncKey: string, f: ContactFields): Promise<GraphContact> {
    const { props, extra, shadows } = toGraphContact(f);
    const c = await this.graph.request<Json>({
      method: "POST", url: `${this.user}/contactFolders/${encodeURIComponent(folderId)}/contacts`, mailbox: this.userId, batchable: true,
      body: { ...props, singleValueExtendedProperties: [{ id: SYNC_KEY_PROP, value: syncKey }, ...extraProperties(extra, shadows)] },
    });
    return { id: String(c.id), lastModifiedDateTime: str(c.lastModifiedDateTime), fields: { ...fromGraphContact(c), extra, ...(shadows.length ? { shadows } : {}) } };
  }

  async update(id: string, f: ContactFields): Promise<GraphContact> {
    const { props, extra, shadows } = toGraphContact(f);
    const c = await this.graph.request<Json>({
      method: "PATCH", url: `${this.user}/contacts/${encodeURIComponent(id)}`, mailbox: this.userId, batchable: true,
      body: { ...props, singleValueExtendedProperties: extraProperties(extra, shadows) },
    });
    return { id, lastModifiedDateTime: str(c.lastModifiedDateTime), fields: { ...fromGraphContact(c), extra, ...(shadows.length ? { shadows } : {}) } };
  }

  /**
   * The ids of the folder's contacts that have a photo, by PidLidHasPicture ("Specifies whether a
   * photo attachment exists for a contact", MS-OXOCNTC; canonical property
   * https://learn.microsoft.com/en-us/office/client-developer/outlook/mapi/pidlidhaspicture-canonical-property),
   * which Exchange keeps with the contact photo attachment (EWS shows it as the read-only
   * Contact.HasPicture). Read as an extended property of a listing, 1,000 contacts a page
   * (https://learn.microsoft.com/en-us/graph/api/singlevaluelegacyextendedproperty-get): a run
   * that copies thousands of Exchange contacts onto the store asks for the photos of those
   * that have one, instead of one photo GET (mostly a 404) per contact.
   */
  async withPictures(folderId: string): Promise<Set<string>> {
    const expand = `singleValueExtendedProperties($filter=id eq '${HAS_PICTURE_PROP}')`;
    let url: string | undefined = `${this.user}/contactFolders/${encodeURIComponent(folderId)}/contacts?$select=id&$top=1000&$expand=${encodeURIComponent(expand)}`;
    const out = new Set<string>();
    while (url) {
      const page: { value: Json[]; "@odata.nextLink"?: string } = await this.graph.request({ method: "GET", url, mailbox: this.userId });
      for (const c of page.value) {
        const props = Array.isArray(c.singleValueExtendedProperties) ? (c.singleValueExtendedProperties as Array<{ id?: unknown; value?: unknown }>) : [];
        if (props.some((p) => String(p.value).toLowerCase() === "true")) out.add(String(c.id));
      }
      url = page["@odata.nextLink"];
    }
    return out;
  }

  /** The contact's photo, or undefined when it has none (profilephoto-get: 404 without one). */
  async getPhoto(id: string): Promise<Photo | undefined> {
    try {
      const bytes = await this.graph.request<Buffer>({ method: "GET", url: `${this.user}/contacts/${encodeURIComponent(id)}/photo/$value`, mailbox: this.userId, binary: true });
      return bytes.length ? { bytes, contentType: sniffImageType(bytes) ?? "application/octet-stream" } : undefined;
    } catch (e) {
      if (isConnectorError(e, "GRAPH_NOT_FOUND")) return undefined;
      throw e;
    }
  }

  /** Sets the contact's photo (profilephoto-update: PUT .../photo/$value, the image bytes). */
  async putPhoto(id: string, photo: Photo): Promise<void> {
    await this.graph.request({ method: "PUT", url: `${this.user}/contacts/${encodeURIComponent(id)}/photo/$value`, mailbox: this.userId, body: photo.bytes, headers: { "Content-Type": photo.contentType } });
  }

  async remove(id: string): Promise<void> {
    await this.graph.request({ method: "DELETE", url: `${this.user}/contacts/${encodeURIComponent(id)}`, mailbox: this.userId, batchable: true });
  }

  async findBySyncKey(folderId: string, syncKey: string): Promise<GraphContact | undefined> {
    const filter = `singleValueExtendedProperties/Any(ep: ep/id eq '${SYNC_KEY_PROP}' and ep/value eq '${syncKey.replace(/'/g, "''")}')`;
    const r = await this.graph.request<{ value: Json[] }>({ method: "GET", url: `${this.user}/contactFolders/${encodeURIComponent(folderId)}/contacts?$filter=${encodeURIComponent(filter)}&$top=2`, mailbox: this.userId });
    const c = r.value[0];
    return c && { id: String(c.id), lastModifiedDateTime: str(c.lastModifiedDateTime), fields: fromGraphContact(c) };
  }
}
