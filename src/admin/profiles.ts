/**
 * Feature profiles (Avaya's "feature groups"): named sets of sync options applied to many
 * mailboxes, with per-user overrides. Parsed with one schema wherever they enter (CLI, admin
 * API, state store), so a profile in state is always complete and valid.
 */
import { z } from "zod";
import { ConnectorError, isConnectorError } from "../errors.js";
import { LOCATION_SHOW_AS } from "../sync/ucLocation.js";

export const featureProfileSchema = z.object({
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "lowercase letters, digits and dashes"),
  displayName: z.string().min(1).max(200),
  /** The customer tenant this profile belongs to, or `shared: true` (docs/security.md). */
  tenantId: z.string().uuid("a tenant id (GUID)").optional(),
  shared: z.boolean().optional(),
  /** Which message classes are copied to Exchange. */
  copy: z.object({
    voice: z.boolean().default(true),
    fax: z.boolean().default(true),
    receipts: z.boolean().default(false),
    email: z.boolean().default(false),
  }).prefault({}),
  /** Exchange folder for the copies: a well-known name or a display name created under the root. */
  exchangeFolder: z.string().min(1).max(255).default("inbox"),
  /** What an Outlook-side delete does on the voice store: expunge, move to a folder, or nothing ("never": the store keeps it). */
  storeDelete: z.discriminatedUnion("mode", [
    z.object({ mode: z.literal("expunge") }),
    z.object({ mode: z.literal("trash"), folder: z.string().min(1).max(255) }),
    z.object({ mode: z.literal("never") }),
  ]).default({ mode: "expunge" }),
  /**
   * What a voice-store delete does in Exchange: move to Deleted Items, hard delete, move to a
   * folder, or nothing ("never": Outlook keeps it, e.g. when the store ages messages out).
   */
  exchangeDelete: z.union([
    z.enum(["deletedItems", "hardDelete", "never"]),
    z.object({ mode: z.literal("folder"), folder: z.string().min(1).max(255) }),
  ]).default("deletedItems"),
  /**
   * Which Outlook-side removals are deletes. Moves to other folders never are (the user's own
   * folders, Archive, retention policies' moves). `trigger`: a move to Deleted Items already
   * deletes ("deletedItems"), or only leaving Deleted Items / Shift+Delete does ("hardDelete":
   * a message restored from Deleted Items still has its store original). `goneFromMailbox`: a
   * copy no longer in the mailbox at all was purged ("delete") or moved to the archive mailbox
   * by a retention policy ("keep"; its immutable id changes there, outlook-immutable-id).
   */
  outlookDelete: z.object({
    trigger: z.enum(["deletedItems", "hardDelete"]).default("deletedItems"),
    goneFromMailbox: z.enum(["delete", "keep"]).default("delete"),
  }).prefault({}),
  /** Secure/private messages: Exchange gets a notice only; the audio never leaves the store. */
  secureMessages: z.enum(["notice", "skip"]).default("notice"),
  calendar: z.object({
    enabled: z.boolean().default(false),
    pastDays: z.number().int().min(0).max(365).default(7),
    futureDays: z.number().int().min(1).max(730).default(60),
    folder: z.string().min(1).max(255).default("Calendar"),
    /** Items in the store's calendar folder that umconnect did not write (a previous product's): left alone, or removed. */
    foreignItems: z.enum(["keep", "remove"]).default("keep"),
    /**
     * The UC location while an event runs (src/sync/ucLocation.ts): which show-as values count
     * (a value Graph adds later counts as "unknown", as the store item shows it as busy) and
     * whether an all-day out-of-office event counts (an all-day busy block never does).
     */
    changeLocation: z.object({
      enabled: z.boolean().default(false),
      text: z.string().min(1).max(100).default("Meeting"),
      showAs: z.array(z.enum(LOCATION_SHOW_AS)).max(LOCATION_SHOW_AS.length).default(["busy", "oof", "tentative", "unknown"]),
      allDayOof: z.boolean().default(true),
    }).prefault({}),
  }).prefault({}),
  contacts: z.object({
    enabled: z.boolean().default(false),
    /** The voice store's contacts folder. */
    folder: z.string().min(1).max(255).default("Contacts"),
    /** The Exchange contact folder: "contacts" is the default folder, any other name a folder under it. */
    exchangeFolder: z.string().min(1).max(255).default("contacts"),
  }).prefault({}),
  /**
   * E-mail on the phone (src/sync/mailSync.ts, docs/email-to-phone.md): new Exchange mail copied
   * into the voice store as e-mail-class messages the voice system reads aloud, read state kept
   * both ways. Off by default. `folders`: Exchange folders copied (well-known names or display
   * names under the root); `filters`: unread only, internal senders only (`internalDomains`, else
   * the user's own domain), not older than `maxAgeDays` (also bounds the first sync), not larger
   * than `maxSizeBytes`; `attachments`: "omit" names them in a line, "limit" keeps those within
   * `maxBytes` and of `types` (MIME types or prefixes); `deletes`: a store delete removes only the
   * copy ("storeOnly") or also moves the mail to Deleted Items ("both"); an Outlook delete always
   * removes the copy. `storeFolder`: the store folder of the copies; `storeFolderCap`: the most
   * copies kept there (the oldest copies are removed from the store only, never from Exchange;
   * the Avaya guide recommends well under 5,000 items per folder).
   */
  emailToPhone: z.object({
    enabled: z.boolean().default(false),
    folders: z.array(z.string().min(1).max(255)).min(1).max(10).default(["inbox"]),
    filters: z.object({
      unreadOnly: z.boolean().default(true),
      internalOnly: z.boolean().default(false),
      internalDomains: z.array(z.string().regex(/^@?[A-Za-z0-9.-]+\.[A-Za-z]{2,}$/, "a domain name")).max(50).default([]),
      maxAgeDays: z.number().int().min(1).max(3650).default(30),
      maxSizeBytes: z.number().int().min(1024).max(150 * 1024 * 1024).default(10 * 1024 * 1024),
    }).prefault({}),
    attachments: z.object({
      mode: z.enum(["omit", "limit"]).default("omit"),
      maxBytes: z.number().int().min(0).max(25 * 1024 * 1024).default(1024 * 1024),
      types: z.array(z.string().regex(/^[a-z0-9.+-]+(\/[a-z0-9.+*-]*)?$/i, "a MIME type or prefix such as text/ or application/pdf")).max(50).default(["text/", "application/pdf"]),
    }).prefault({}),
    deletes: z.enum(["storeOnly", "both"]).default("storeOnly"),
    storeFolder: z.string().min(1).max(255).default("INBOX"),
    storeFolderCap: z.number().int().min(10).max(100_000).default(1000),
  }).prefault({}),
  /**
   * Disaster-recovery mirror to the endpoint's backup (docs/mirror.md): off by default; which
   * folders of each mailbox (exact names or `*` patterns, e.g. "Greetings*"); `exclude` wins.
   */
  mirror: z.object({
    enabled: z.boolean().default(false),
    include: z.array(z.string().min(1).max(255)).max(50).default(["INBOX"]),
    exclude: z.array(z.string().min(1).max(255)).max(50).default([]),
  }).prefault({}),
  /** Mail addressed to this domain is the voice system's own and never copied back. */
  loopPreventionDomain: z.string().max(255).optional(),
  /**
   * What a recording becomes in Outlook (src/formats/transcode.ts): "mp3" plays in every Outlook
   * (desktop, web, mobile) and is the smallest that does; "wav" is 16-bit PCM; "gsm-wav" is
   * GSM 6.10 in WAV, smallest of all but played by Windows codecs only. "original" (the former
   * default) is read as "mp3": a G.726 or AMR original plays nowhere in Outlook. The store
   * always keeps the original.
   */
  voiceFormat: z.preprocess((v) => (v === "original" ? "mp3" : v), z.enum(["mp3", "wav", "gsm-wav"])).default("mp3"),
  /**
   * Mass-delete guard: `maxShare` of a mailbox's linked items one run may delete (unset: the
   * deployment's UMC_MASS_DELETE_MAX_SHARE); `agingMinDays`: store losses of messages at least
   * this old, all older than what it kept, are its own expiry and pass.
   */
  massDelete: z.object({ maxShare: z.number().min(0).max(1).optional(), agingMinDays: z.number().min(0).max(3650).default(7) }).prefault({}),
}).refine((p) => !(p.tenantId && p.shared), { message: "either tenantId or shared, not both", path: ["shared"] });

export type FeatureProfile = z.output<typeof featureProfileSchema>;
export type FeatureProfileInput = z.input<typeof featureProfileSchema>;

/** Settings a per-user override may not touch. */
const IDENTITY = ["id", "displayName", "tenantId", "shared"];

/** Per-user overrides: any subset of a profile except its identity, stored as given (not
 *  parsed: parsing would fill in defaults that hide the profile's own settings). */
export type ProfileOverride = Record<string, unknown>;

export function parseProfile(input: unknown): FeatureProfile {
  const r = featureProfileSchema.safeParse(input);
  if (!r.success) {
    const problems = r.error.issues.map((i) => `${i.path.join(".") || "(profile)"}: ${i.message}`);
    throw new ConnectorError("BAD_REQUEST", `invalid feature profile: ${problems.join("; ")}`, { problems });
  }
  return r.data;
}

/** The profile a mailbox runs with: its profile with the user's overrides applied. */
export function effectiveProfile(profile: FeatureProfile, override: ProfileOverride | undefined): FeatureProfile {
  if (!override) return profile;
  // One level deep: an override of `copy.fax` keeps the profile's other `copy` settings.
  const merged: Record<string, unknown> = { ...profile };
  for (const [key, value] of Object.entries(override)) {
    const base = merged[key];
    const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
    merged[key] = isObj(base) && isObj(value) && !("mode" in value) ? { ...base, ...value } : value;
  }
  return parseProfile({ ...merged, id: profile.id, displayName: profile.displayName, tenantId: profile.tenantId, shared: profile.shared });
}

/** Every problem with an override for this profile: identity, unknown settings at any depth
 *  (typos would otherwise be dropped silently), and whatever makes the result invalid. */
export function overrideProblems(profile: FeatureProfile, override: unknown): string[] {
  if (typeof override !== "object" || override === null || Array.isArray(override)) return ["(override): must be a JSON object"];
  const o = override as ProfileOverride;
  const problems = IDENTITY.filter((k) => k in o).map((k) => `${k}: a profile's identity and owner cannot be overridden`);
  problems.push(...unknownSettings(o, profile as unknown as Record<string, unknown>));
  try {
    effectiveProfile(profile, o);
  } catch (e) {
    if (!isConnectorError(e, "BAD_REQUEST")) throw e;
    problems.push(...e.problems);
  }
  return problems;
}

function unknownSettings(given: Record<string, unknown>, known: Record<string, unknown>, at = ""): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(given)) {
    const path = at ? `${at}.${k}` : k;
    if (!at && IDENTITY.includes(k)) continue;
    if (!(k in known)) { out.push(`${path}: unknown setting`); continue; }
    const sub = known[k];
    if (v && typeof v === "object" && !Array.isArray(v) && sub && typeof sub === "object" && !Array.isArray(sub)) out.push(...unknownSettings(v as Record<string, unknown>, sub as Record<string, unknown>, path));
  }
  return out;
}

/** Built in and shared: it holds no customer's settings. */
export const DEFAULT_PROFILE: FeatureProfile = parseProfile({ id: "default", displayName: "Voice and fax to Inbox", shared: true });
