/**
 * The mass-delete guard's limits for one link and kind: the profile's share, or the
 * deployment's UMC_MASS_DELETE_MAX_SHARE when the profile sets none; the administrator's
 * one-time permission (`umconnect allow-mass-delete`).
 */
import type { FeatureProfile } from "../admin/profiles.js";
import type { MailboxLink } from "../state/stateStore.js";
import type { MassDeleteLimits } from "../sync/massDelete.js";
import type { Deps } from "./deps.js";

export function guardLimits(deps: Pick<Deps, "config">, profile: FeatureProfile, link: Pick<MailboxLink, "massDeleteAllowed">, kind: "voicemail" | "contacts" | "calendar"): MassDeleteLimits {
  return { massDeleteMaxShare: profile.massDelete.maxShare ?? deps.config.sync.massDeleteMaxShare, massDeleteOverride: link.massDeleteAllowed?.[kind] !== undefined };
}
