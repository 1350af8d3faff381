/**
 * The runs a change in one store folder starts (src/app/storeChanges.ts), shared by the store's
 * push hook and the IDLE/NOTIFY watchers. Break seen red: the contacts folder also counted as
 * INBOX-like (voicemail for any folder) -> "the contacts folder starts the contacts run only".
 */
import { describe, expect, it } from "vitest";
import { parseProfile } from "../../src/admin/profiles.js";
import { runsForFolderChange } from "../../src/app/storeChanges.js";

const profile = (over: Record<string, unknown>) => parseProfile({ id: "p", displayName: "p", ...over });

describe("runs a store folder's change starts", () => {
  it("INBOX: the voice messages; nothing for the calendar folder or a trash folder", () => {
    const p = profile({});
    expect(runsForFolderChange(p, false, "INBOX")).toEqual(["voicemail"]);
    expect(runsForFolderChange(p, false, "inbox")).toEqual(["voicemail"]);
    expect(runsForFolderChange(p, false, "Calendar")).toEqual([]);
    expect(runsForFolderChange(p, false, "Trash")).toEqual([]);
  });

  it("the contacts folder starts the contacts run only, and only when contacts are synced", () => {
    expect(runsForFolderChange(profile({ contacts: { enabled: true } }), false, "contacts")).toEqual(["contacts"]);
    expect(runsForFolderChange(profile({}), false, "Contacts")).toEqual([]);
  });

  it("e-mail copies: their folder starts the mail run, in INBOX beside the voice messages", () => {
    expect(runsForFolderChange(profile({ emailToPhone: { enabled: true } }), false, "INBOX")).toEqual(["voicemail", "mail"]);
    expect(runsForFolderChange(profile({ emailToPhone: { enabled: true, storeFolder: "Email" } }), false, "Email")).toEqual(["mail"]);
    // A message added to the copies' folder is the connector's own APPEND echoing back: no e-mail run.
    expect(runsForFolderChange(profile({ emailToPhone: { enabled: true, storeFolder: "Email" } }), false, "Email", "MessageAppend")).toEqual([]);
    expect(runsForFolderChange(profile({ emailToPhone: { enabled: true } }), false, "INBOX", "MessageNew")).toEqual(["voicemail"]);
    expect(runsForFolderChange(profile({ emailToPhone: { enabled: true, storeFolder: "Email" } }), false, "Email", "FlagsSet")).toEqual(["mail"]);
  });

  it("a mirrored folder starts the mirror only when the endpoint has a backup", () => {
    const p = profile({ mirror: { enabled: true, include: ["INBOX", "Greetings*"] } });
    expect(runsForFolderChange(p, true, "INBOX")).toEqual(["voicemail", "mirror"]);
    expect(runsForFolderChange(p, true, "Greetings/Personal")).toEqual(["mirror"]);
    expect(runsForFolderChange(p, false, "Greetings/Personal")).toEqual([]);
  });
});
