import { describe, expect, it } from "vitest";
import { DEFAULT_PROFILE, effectiveProfile, parseProfile } from "../../src/admin/profiles.js";

describe("feature profiles", () => {
  it("fills defaults and keeps overrides one level deep", () => {
    const p = effectiveProfile(DEFAULT_PROFILE, { copy: { fax: false }, storeDelete: { mode: "trash", folder: "Trash" } });
    expect(p.copy).toEqual({ voice: true, fax: false, receipts: false, email: false });
    expect(p.storeDelete).toEqual({ mode: "trash", folder: "Trash" });
    expect(p.id).toBe("default");
  });
  it("reports every problem at once with a typed error", () => {
    expect(() => parseProfile({ id: "Bad Id", displayName: "", calendar: { pastDays: -1 } })).toThrowError(
      expect.objectContaining({ code: "BAD_REQUEST", problems: expect.arrayContaining([expect.stringMatching(/^id:/), expect.stringMatching(/^displayName:/), expect.stringMatching(/^calendar.pastDays:/)]) }),
    );
  });
  it("keeps e-mail on the phone off by default and validates its settings with the others", () => {
    expect(DEFAULT_PROFILE.emailToPhone.enabled).toBe(false);
    expect(DEFAULT_PROFILE.emailToPhone.folders).toEqual(["inbox"]);
    const p = effectiveProfile(DEFAULT_PROFILE, { emailToPhone: { enabled: true, deletes: "both" } });
    expect(p.emailToPhone).toMatchObject({ enabled: true, deletes: "both", storeFolder: "INBOX", attachments: { mode: "omit" } });
    expect(() => parseProfile({ id: "p", displayName: "P", emailToPhone: { deletes: "everywhere", storeFolderCap: 0, attachments: { mode: "all" } } })).toThrowError(
      expect.objectContaining({ code: "BAD_REQUEST", problems: expect.arrayContaining([expect.stringMatching(/^emailToPhone.deletes:/), expect.stringMatching(/^emailToPhone.storeFolderCap:/), expect.stringMatching(/^emailToPhone.attachments.mode:/)]) }),
    );
  });
});
