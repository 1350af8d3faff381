/**
 * Voice-store endpoints and their super-user secrets. In Azure the secrets file is not used:
 * secrets come from Key Vault references (docs/deploy.md); in the dev host and tests they come
 * from the local secrets file named by UMC_SECRETS_FILE (kept out of git under .local/). They
 * are never written to tables or logs.
 */
import fs from "node:fs";
import { z } from "zod";
import { ConnectorError } from "../errors.js";
import type { ImapEndpoint } from "../imap/endpoint.js";
import { parseProfile, effectiveProfile, DEFAULT_PROFILE, type FeatureProfile, type ProfileOverride } from "../admin/profiles.js";

const authSchema = z.discriminatedUnion("mode", [
  z.object({ mode: z.literal("user-password"), password: z.string().min(1) }),
  z.object({ mode: z.literal("master-separator"), masterUser: z.string().min(1), password: z.string().min(1), separator: z.string().min(1).max(2).optional() }),
  z.object({ mode: z.literal("sasl-authzid"), masterUser: z.string().min(1), password: z.string().min(1) }),
]);

const fileSchema = z.object({
  endpoints: z.array(z.object({
    id: z.string().min(1),
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535),
    tls: z.enum(["implicit", "starttls", "plaintext"]),
    caBundlePath: z.string().optional(),
    auth: authSchema,
    maxConnections: z.number().int().min(1).max(200).default(8),
    /** Optional: the voice system's URL for UC-location changes (signed POST, https only). */
    locationCallbackUrl: z.string().url().refine((u) => /^https:\/\//i.test(u), "must be https").optional(),
  })),
  profiles: z.array(z.unknown()).default([]),
});

export interface Directory {
  endpoint(id: string): ImapEndpoint;
  profile(id: string): FeatureProfile;
  /** The profile a link runs with: its feature profile with the user's overrides applied. */
  linkProfile(link: { profileId: string; profileOverride?: Record<string, unknown> }): FeatureProfile;
  /** The endpoint's UC-location callback URL, when it has one. */
  locationCallback(id: string): string | undefined;
  /** For the CLI: endpoints without their secrets, and the profiles. */
  listEndpoints(): Array<{ id: string; host: string; port: number; tls: string; auth: string; maxConnections: number; locationCallbackUrl?: string }>;
  listProfiles(): FeatureProfile[];
}

export function loadDirectory(secretsFile: string | undefined): Directory {
  if (!secretsFile) throw new ConnectorError("CONFIG_INVALID", "UMC_SECRETS_FILE is not set: no voice-store endpoints are known");
  let parsed: z.infer<typeof fileSchema>;
  try {
    parsed = fileSchema.parse(JSON.parse(fs.readFileSync(secretsFile, "utf8")));
  } catch (e) {
    // Never echo the file: it holds passwords.
    throw new ConnectorError("CONFIG_INVALID", `secrets file ${secretsFile} is missing or invalid`, { cause: e instanceof z.ZodError ? new Error(e.issues.map((i) => i.path.join(".")).join(", ")) : undefined });
  }
  const endpoints = new Map<string, ImapEndpoint>(parsed.endpoints.map((e) => [e.id, {
    id: e.id, host: e.host, port: e.port, tls: e.tls, auth: e.auth, maxConnections: e.maxConnections,
    caBundle: e.caBundlePath ? fs.readFileSync(e.caBundlePath, "utf8") : undefined,
  }]));
  const profiles = new Map<string, FeatureProfile>([[DEFAULT_PROFILE.id, DEFAULT_PROFILE], ...parsed.profiles.map((p) => { const x = parseProfile(p); return [x.id, x] as const; })]);
  const callbacks = new Map(parsed.endpoints.map((e) => [e.id, e.locationCallbackUrl]));
  const profile = (id: string) => {
    const p = profiles.get(id);
    if (!p) throw new ConnectorError("NOT_FOUND", `unknown feature profile ${id}`);
    return p;
  };
  return {
    locationCallback: (id) => callbacks.get(id),
    listEndpoints: () => parsed.endpoints.map((e) => ({ id: e.id, host: e.host, port: e.port, tls: e.tls, auth: e.auth.mode, maxConnections: e.maxConnections, locationCallbackUrl: e.locationCallbackUrl })),
    listProfiles: () => [...profiles.values()],
    endpoint(id) {
      const e = endpoints.get(id);
      if (!e) throw new ConnectorError("NOT_FOUND", `unknown voice-store endpoint ${id}`, { endpoint: id });
      return e;
    },
    profile,
    linkProfile: (link) => effectiveProfile(profile(link.profileId), link.profileOverride as ProfileOverride | undefined),
  };
}
