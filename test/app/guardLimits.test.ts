import { describe, expect, it } from "vitest";
import { guardLimits } from "../../src/app/guardLimits.js";
import { DEFAULT_PROFILE, effectiveProfile } from "../../src/admin/profiles.js";
import { loadConfig } from "../../src/config.js";

const config = (share?: string) => loadConfig({ UMC_ENVIRONMENT: "test", UMC_STORAGE_CONNECTION_STRING: "UseDevelopmentStorage=true", UMC_CLIENT_ID: "c", UMC_CLIENT_SECRET: "s", ...(share ? { UMC_MASS_DELETE_MAX_SHARE: share } : {}) });

describe("UMC_MASS_DELETE_MAX_SHARE", () => {
  it("is the share a profile without its own uses; a profile's own share wins; the admin's permission lifts the guard", () => {
    expect(guardLimits({ config: config("0.2") }, DEFAULT_PROFILE, {}, "voicemail")).toEqual({ massDeleteMaxShare: 0.2, massDeleteOverride: false });
    expect(guardLimits({ config: config() }, DEFAULT_PROFILE, {}, "contacts").massDeleteMaxShare).toBe(0.5);
    const own = effectiveProfile(DEFAULT_PROFILE, { massDelete: { maxShare: 0.9 } });
    expect(guardLimits({ config: config("0.2") }, own, {}, "voicemail").massDeleteMaxShare).toBe(0.9);
    expect(guardLimits({ config: config("0.2") }, DEFAULT_PROFILE, { massDeleteAllowed: { calendar: "2026-11-30T00:00:00Z" } }, "calendar").massDeleteOverride).toBe(true);
  });
});
