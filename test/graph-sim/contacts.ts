/**
 * Personal contacts (https://learn.microsoft.com/en-us/graph/api/resources/contact) with
 * per-folder delta (https://learn.microsoft.com/en-us/graph/api/contact-delta). The default
 * folder answers to the well-known name `contacts` (as `/contactFolders/contacts/contacts/delta`
 * used by public Graph clients); `/contactFolders` lists the folders under it.
 */
import crypto from "node:crypto";
import { newChangeKey, newId, type SimContact, type SimFolder, type SimUser } from "./model.js";
import { normPropId, ODataError, parseExpand, parseMessageFilter, parseSelect } from "./odata.js";

/** Writable contact properties (contact resource, "Properties"); others are refused with 400. */
export const CONTACT_PROPS = new Set([
  "assistantName", "birthday", "businessAddress", "businessHomePage", "businessPhones", "categories", "children", "companyName", "department",
  "displayName", "emailAddresses", "fileAs", "generation", "givenName", "homeAddress", "homePhones", "imAddresses", "initials", "jobTitle",
  "manager", "middleName", "mobilePhone", "nickName", "officeLocation", "otherAddress", "personalNotes", "profession", "spouseName", "surname",
  "title", "yomiCompanyName", "yomiGivenName", "yomiSurname",
]);

/** PidLidHasPicture (PSETID_Address, LID 0x8015, PT_BOOLEAN): "whether a photo attachment exists for a contact". */
const HAS_PICTURE = "Boolean {00062004-0000-0000-C000-000000000046} Id 0x8015";

/** Contact photos: at most 4 MB (profilephoto-update), image types Exchange reads. */
export const PHOTO_MAX_BYTES = 4 * 1024 * 1024;
const PHOTO_TYPES = new Set(["image/jpeg", "image/png", "image/gif", "image/bmp"]);
/** The body is the image its magic bytes say (JPEG FFD8FF, PNG, GIF8, BM). */
function sniffImage(b: Buffer): boolean {
  return (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) || b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) || b.subarray(0, 4).toString("latin1") === "GIF8" || b.subarray(0, 2).toString("latin1") === "BM";
}

export interface ContactsHost {
  origin: string;
  notifyContact(user: SimUser, c: { id: string; folderId: string; changeKey: string }, change: "created" | "updated" | "deleted"): void;
}

interface Res { status: number; headers?: Record<string, string>; body?: unknown }
const notFound = (): Res => ({ status: 404, body: { error: { code: "ErrorItemNotFound", message: "The specified object was not found in the store." } } });
const bad = (code: string, message: string): Res => ({ status: 400, body: { error: { code, message } } });

export function resolveContactFolder(user: SimUser, ref: string): SimFolder | undefined {
  const lower = ref.toLowerCase();
  for (const f of user.contactFolders.values()) if (f.id === ref || f.wellKnownName === lower) return f;
  return undefined;
}

export class ContactsModel {
  private readonly deltaTokens = new Map<string, { userId: string; folderId: string; seq: number; select?: string }>();
  private readonly skipTokens = new Map<string, { userId: string; folderId: string; items: Array<{ id: string; removed: boolean }>; endSeq: number; select?: string; pageSize: number }>();

  constructor(private readonly host: ContactsHost) {}

  /** Routes under /users/{id}/contacts and /users/{id}/contactFolders. */
  route(method: string, rest: string, q: URLSearchParams, body: () => Record<string, unknown>, user: SimUser, prefer: string[], media?: { bytes: Buffer; contentType: string }): Res {
    let m: RegExpMatchArray | null;
    if ((m = rest.match(/^(?:\/contactFolders\/[^/]+)?\/contacts\/([^/]+)\/photo(\/\$value)?$/))) return this.photo(user, m[1]!, Boolean(m[2]), method, media);
    const root = resolveContactFolder(user, "contacts")!;
    if (rest === "/contactFolders" && method === "GET") return { status: 200, body: { value: [...user.contactFolders.values()].filter((f) => f.parentFolderId === root.id).map((f) => folderJson(f)) } };
    if (rest === "/contactFolders" && method === "POST") {
      const name = String(body().displayName ?? "").trim();
      if (!name) return bad("ErrorInvalidRequest", "displayName is required.");
      if ([...user.contactFolders.values()].some((f) => f.parentFolderId === root.id && f.displayName.toLowerCase() === name.toLowerCase())) return { status: 409, body: { error: { code: "ErrorFolderExists", message: "A folder with the specified name already exists." } } };
      const f: SimFolder = { id: newId("AQMkADc"), displayName: name, parentFolderId: root.id };
      user.contactFolders.set(f.id, f);
      return { status: 201, body: folderJson(f) };
    }
    if ((m = rest.match(/^\/contactFolders\/([^/]+)$/)) && method === "GET") {
      const f = resolveContactFolder(user, m[1]!);
      return f ? { status: 200, body: folderJson(f) } : notFound();
    }
    // Collection and items, either on the default folder (/contacts) or a named one.
    m = rest.match(/^(?:\/contactFolders\/([^/]+))?\/contacts(?:\/([^/]+))?$/);
    if (!m) return bad("BadRequest", `The simulator does not implement ${method} ${rest}`);
    const folder = m[1] ? resolveContactFolder(user, m[1]) : root;
    if (!folder) return notFound();
    const itemId = m[2];
    if (itemId === "delta" && method === "GET") return this.delta(user, folder, q, prefer);
    if (!itemId) {
      if (method === "POST") return this.create(user, folder, body());
      if (method === "GET") return this.list(user, folder, q);
      return { status: 405, body: { error: { code: "MethodNotAllowed", message: "Method not allowed" } } };
    }
    const c = user.contacts.get(itemId);
    if (!c || (m[1] && c.folderId !== folder.id)) return notFound();
    if (method === "GET") return { status: 200, body: contactJson(c, parseSelect(q.get("$select")), parseExpand(q.get("$expand"))) };
    if (method === "PATCH") return this.patch(user, c, body());
    if (method === "DELETE") { this.remove(user, c); return { status: 204 }; }
    return { status: 405, body: { error: { code: "MethodNotAllowed", message: "Method not allowed" } } };
  }

  create(user: SimUser, folder: SimFolder, b: Record<string, unknown>): Res {
    const checked = checkProps(b);
    if ("status" in checked) return checked;
    const now = new Date().toISOString();
    const c: SimContact = { id: newId("AAMkADc"), folderId: folder.id, changeKey: newChangeKey(), createdDateTime: now, lastModifiedDateTime: now, props: checked.props, ext: checked.ext, seq: 0 };
    user.contacts.set(c.id, c);
    this.touch(user, c, "created");
    return { status: 201, body: contactJson(c) };
  }

  patch(user: SimUser, c: SimContact, b: Record<string, unknown>): Res {
    const checked = checkProps(b);
    if ("status" in checked) return checked;
    // PATCH replaces the given properties only; the rest keep their values.
    Object.assign(c.props, checked.props);
    for (const [k, v] of checked.ext) c.ext.set(k, v);
    c.changeKey = newChangeKey();
    this.touch(user, c, "updated");
    return { status: 200, body: contactJson(c) };
  }

  /**
   * The contact photo (https://learn.microsoft.com/en-us/graph/api/profilephoto-update: PUT
   * .../photo/$value with the image bytes; "the photo ... is limited to 4 MB"; GET .../photo is
   * its metadata and 404 ImageNotFound without one, GET .../photo/$value the bytes). JPEG, PNG,
   * GIF and BMP are taken; any other body is refused as Exchange refuses what is not an image.
   */
  photo(user: SimUser, id: string, value: boolean, method: string, media?: { bytes: Buffer; contentType: string }): Res {
    const c = user.contacts.get(id);
    if (!c) return notFound();
    if (method === "GET") {
      if (!c.photo) return { status: 404, body: { error: { code: "ImageNotFound", message: "The photo wasn't found." } } };
      return value ? { status: 200, headers: { "content-type": c.photo.contentType }, raw: c.photo.bytes } as Res
        : { status: 200, body: { "@odata.mediaContentType": c.photo.contentType, "@odata.mediaEtag": `W/"${c.photo.etag}"`, id: "default", width: 96, height: 96 } };
    }
    if ((method === "PUT" || method === "PATCH") && value) {
      const bytes = media?.bytes ?? Buffer.alloc(0);
      const type = (media?.contentType ?? "").split(";")[0]!.trim().toLowerCase();
      if (bytes.length > PHOTO_MAX_BYTES) return { status: 413, body: { error: { code: "ErrorRequestEntityTooLarge", message: "The photo exceeds the 4 MB limit." } } };
      if (!PHOTO_TYPES.has(type) || !sniffImage(bytes)) return bad("ErrorInvalidImage", "The image is not valid or its type is not supported.");
      c.photo = { bytes, contentType: type, etag: crypto.createHash("sha256").update(bytes).digest("base64url").slice(0, 16) };
      // Exchange keeps PidLidHasPicture with the photo attachment (MS-OXOCNTC; EWS's read-only
      // Contact.HasPicture), readable as an extended property.
      c.ext.set(normPropId(HAS_PICTURE), { id: HAS_PICTURE, value: "true" });
      c.changeKey = newChangeKey();
      this.touch(user, c, "updated");
      return { status: 200 };
    }
    return { status: 405, body: { error: { code: "MethodNotAllowed", message: "Method not allowed" } } };
  }

  remove(user: SimUser, c: SimContact) {
    user.contacts.delete(c.id);
    user.seq++;
    user.contactTombstones.push({ id: c.id, folderId: c.folderId, seq: user.seq });
    this.host.notifyContact(user, c, "deleted");
  }

  private touch(user: SimUser, c: SimContact, change: "created" | "updated") {
    user.seq++;
    c.seq = user.seq;
    c.lastModifiedDateTime = new Date(Math.max(Date.now(), Date.parse(c.lastModifiedDateTime) + 1)).toISOString();
    this.host.notifyContact(user, c, change);
  }

  private list(user: SimUser, folder: SimFolder, q: URLSearchParams): Res {
    let list = [...user.contacts.values()].filter((c) => c.folderId === folder.id);
    const filter = q.get("$filter");
    if (filter) {
      const f = parseMessageFilter(filter);
      if (f.kind !== "extProp") throw new ODataError("ErrorInvalidUrlQueryFilter", `The simulator does not support this $filter on contacts: ${filter}`);
      list = list.filter((c) => c.ext.get(normPropId(f.id))?.value === f.value);
    }
    const top = Math.min(Number(q.get("$top") ?? 10), 1000);
    const skip = Number(q.get("$skip") ?? 0);
    const body: Record<string, unknown> = { value: list.slice(skip, skip + top).map((c) => contactJson(c, parseSelect(q.get("$select")), parseExpand(q.get("$expand")))) };
    if (skip + top < list.length) {
      const next = new URLSearchParams(q);
      next.set("$skip", String(skip + top));
      body["@odata.nextLink"] = `${this.host.origin}/v1.0/users/${user.id}/contactFolders/${folder.id}/contacts?${next.toString()}`;
    }
    return { status: 200, body };
  }

  /** Same paging and token rules as message delta; `$select` is supported (contact-delta). */
  private delta(user: SimUser, folder: SimFolder, q: URLSearchParams, prefer: string[]): Res {
    const pref = prefer.find((p) => /^odata\.maxpagesize=\d+$/i.test(p));
    const pageSize = pref ? Math.max(1, Number(pref.split("=")[1])) : 10;
    const gone = (): Res => ({ status: 410, body: { error: { code: "SyncStateNotFound", message: "The sync state generation is not found. Please restart the sync with an initial delta request." } } });
    if (q.get("$expand") || q.get("$filter")) throw new ODataError("BadRequest", "contact delta supports $select only");
    let state: { userId: string; folderId: string; items: Array<{ id: string; removed: boolean }>; endSeq: number; select?: string; pageSize: number };
    const skipToken = q.get("$skiptoken");
    const deltaToken = q.get("$deltatoken");
    if (skipToken) {
      const s = this.skipTokens.get(skipToken);
      if (!s || s.userId !== user.id) return gone();
      this.skipTokens.delete(skipToken);
      state = s;
    } else {
      let since = -1;
      let select = q.get("$select") ?? undefined;
      if (deltaToken) {
        const d = this.deltaTokens.get(deltaToken);
        if (!d || d.userId !== user.id || d.folderId !== folder.id) return gone();
        since = d.seq;
        select = d.select;
      }
      const changed = [...user.contacts.values()].filter((c) => c.folderId === folder.id && c.seq > since).sort((a, b) => a.seq - b.seq).map((c) => ({ id: c.id, removed: false }));
      const removed = since < 0 ? [] : user.contactTombstones.filter((t) => t.folderId === folder.id && t.seq > since && !user.contacts.has(t.id)).map((t) => ({ id: t.id, removed: true }));
      state = { userId: user.id, folderId: folder.id, items: [...removed, ...changed], endSeq: user.seq, select, pageSize };
    }
    const page = state.items.slice(0, state.pageSize);
    const rest = state.items.slice(state.pageSize);
    const select = parseSelect(state.select ?? null);
    const value = page.map((it) => {
      const c = user.contacts.get(it.id);
      if (it.removed || !c || c.folderId !== folder.id) return { "@odata.type": "#microsoft.graph.contact", id: it.id, "@removed": { reason: "deleted" } };
      return { "@odata.type": "#microsoft.graph.contact", ...contactJson(c, select) };
    });
    const base = `${this.host.origin}/v1.0/users/${user.id}/contactFolders/${folder.id}/contacts/delta`;
    const headers: Record<string, string> = pref ? { "Preference-Applied": `odata.maxpagesize=${state.pageSize}` } : {};
    const token = crypto.randomBytes(16).toString("base64url");
    if (rest.length) {
      this.skipTokens.set(token, { ...state, items: rest });
      return { status: 200, headers, body: { "@odata.nextLink": `${base}?$skiptoken=${token}`, value } };
    }
    this.deltaTokens.set(token, { userId: user.id, folderId: folder.id, seq: state.endSeq, select: state.select });
    return { status: 200, headers, body: { "@odata.deltaLink": `${base}?$deltatoken=${token}`, value } };
  }

  expireDeltaTokens(userId: string) {
    for (const [k, v] of this.deltaTokens) if (v.userId === userId) this.deltaTokens.delete(k);
    for (const [k, v] of this.skipTokens) if (v.userId === userId) this.skipTokens.delete(k);
  }
}

function checkProps(b: Record<string, unknown>): Res | { props: Record<string, unknown>; ext: Map<string, { id: string; value: string }> } {
  const props: Record<string, unknown> = {};
  const ext = new Map<string, { id: string; value: string }>();
  for (const [k, v] of Object.entries(b)) {
    if (k === "singleValueExtendedProperties") {
      if (!Array.isArray(v)) return bad("ErrorInvalidExtendedProperty", "The extended property is invalid.");
      for (const p of v as Array<{ id?: unknown; value?: unknown }>) {
        if (typeof p?.id !== "string" || typeof p.value !== "string") return bad("ErrorInvalidExtendedProperty", "The extended property is invalid.");
        ext.set(normPropId(p.id), { id: p.id, value: p.value });
      }
      continue;
    }
    if (k.startsWith("@odata.")) continue;
    if (!CONTACT_PROPS.has(k)) return bad("RequestBodyRead", `The property '${k}' does not exist on type 'microsoft.graph.contact'. Make sure to only use property names that are defined by the type or mark the type as open type.`);
    if (k === "emailAddresses" && Array.isArray(v) && v.length > 3) return bad("ErrorInvalidArgument", "A contact holds at most three email addresses.");
    // Edm.DateTimeOffset: a date that does not exist, or one before Exchange's 1601 epoch, is refused as Graph does.
    if (k === "birthday" && v !== null && !isGraphDate(v)) return bad("BadRequest", `Cannot convert the literal '${String(v)}' to the expected type 'Edm.DateTimeOffset'.`);
    props[k] = v;
  }
  return { props, ext };
}

function isGraphDate(v: unknown): boolean {
  const m = typeof v === "string" ? v.match(/^(\d{4})-(\d{2})-(\d{2})T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/) : null;
  if (!m) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const t = new Date(Date.UTC(y, mo - 1, d));
  return y >= 1601 && t.getUTCFullYear() === y && t.getUTCMonth() === mo - 1 && t.getUTCDate() === d;
}

function folderJson(f: SimFolder) {
  return { id: f.id, displayName: f.displayName, parentFolderId: f.parentFolderId };
}

export function contactJson(c: SimContact, select?: Set<string>, expandIds?: string[]): Record<string, unknown> {
  const defaults: Record<string, unknown> = { emailAddresses: [], businessPhones: [], homePhones: [], imAddresses: [], categories: [], children: [], homeAddress: {}, businessAddress: {}, otherAddress: {} };
  const full: Record<string, unknown> = {
    "@odata.etag": `W/"${c.changeKey}"`, id: c.id, createdDateTime: c.createdDateTime, lastModifiedDateTime: c.lastModifiedDateTime, changeKey: c.changeKey,
    parentFolderId: c.folderId, ...defaults, ...c.props,
  };
  for (const k of CONTACT_PROPS) if (!(k in full)) full[k] = null;
  const out = select ? Object.fromEntries(Object.entries(full).filter(([k]) => k === "id" || k === "@odata.etag" || select.has(k))) : full;
  if (expandIds) {
    const wanted = new Set(expandIds.map(normPropId));
    const props = [...c.ext.entries()].filter(([k]) => wanted.has(k)).map(([, v]) => v);
    if (props.length) out.singleValueExtendedProperties = props;
  }
  return out;
}
