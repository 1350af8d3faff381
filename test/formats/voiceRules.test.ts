/**
 * The precedence tables (src/formats/voiceRules.ts) on the cases users saw go wrong: gateway
 * names as callers, "from 4085550123" split into a name "4", "(1 page)" / "(00:02)" / the
 * recipient's "MB:4021" taken as numbers, vendor headers ignored, durations in bodies unread.
 */
import { describe, expect, it } from "vitest";
import { messageDuration, parseVoiceMessage } from "../../src/formats/voiceMessage.js";
import { spokenDuration } from "../../src/formats/voiceRules.js";
import { formatDuration, toVoicemailItem } from "../../src/sync/voicemailCopy.js";
import { wav } from "../fixtures/voicemail.js";

/** A one-part voice message with the given headers and body text (8,000 samples = 1 s of audio). */
function msg(headers: string[], body = "You have a new voice message.", audioSeconds = 1): Buffer {
  const audio = wav(8000 * audioSeconds).toString("base64").replace(/.{76}/g, "$&\r\n");
  return Buffer.from([
    ...headers, "MIME-Version: 1.0", 'Content-Type: multipart/mixed; boundary="b"', "",
    "--b", "Content-Type: text/plain; charset=utf-8", "", body,
    "--b", "Content-Type: audio/wav", "Content-Transfer-Encoding: base64", 'Content-Disposition: attachment; filename="m.wav"', "", audio,
    "--b--", "",
  ].join("\r\n"));
}
const caller = async (headers: string[], body?: string) => { const m = await parseVoiceMessage(msg(headers, body)); return { name: m.caller.name, number: m.caller.number }; };

describe("caller identity", () => {
  it("vendor headers outrank subject and From", async () => {
    expect(await caller(["From: Asterisk PBX <asterisk@pbx.test>", "Subject: Voice message from Someone Else (999)", "X-Asterisk-VM-Caller-ID-Name: Bob Smith", "X-Asterisk-VM-Caller-ID-Num: 015112345678"]))
      .toEqual({ name: "Bob Smith", number: "015112345678" });
    expect(await caller(["From: Ann <ann@x.test>", "Subject: Voice Mail from Someone Else", "X-VoiceMessageSenderName: Ann Lee", "X-CallingTelephoneNumber: +49 30 123456", "Content-Class: voice-ca"]))
      .toEqual({ name: "Ann Lee", number: "+49 30 123456" });
    expect(await caller(["From: PBX Phone System <pbx@x.test>", "Subject: New voicemail", "X-Asterisk-CallerIDName: Eve Adams", "X-Asterisk-CallerID: 2001"]))
      .toEqual({ name: "Eve Adams", number: "2001" });
  });

  it("a gateway's display name is never the caller", async () => {
    for (const gw of ["Asterisk PBX", "PBX Phone System", "NuPoint Voice Mail", "Fax Server", "Voicemail System", "Microsoft Outlook", "UnityConnection"]) {
      expect((await caller([`From: ${gw} <system@pbx.test>`, "Subject: New message 3 in mailbox 4711", "Message-Context: voice-message"])).name, gw).toBeUndefined();
    }
  });

  it("a person's From display name counts when nothing better says who called", async () => {
    expect(await caller(["From: Gina Holt <gina@x.test>", "Subject: Voice message", "Message-Context: voice-message"])).toEqual({ name: "Gina Holt", number: undefined });
  });

  it("anonymous, unknown and restricted callers are an unknown caller, not a name", async () => {
    for (const v of ["Anonymous", "unknown", "Restricted", "an unknown caller", "Unknown Caller", "PRIVATE"]) {
      expect(await caller(["From: Ann Lee <4085550123@carrier.test>", "Message-Context: voice-message", `X-VoiceMessageSenderName: ${v}`, `X-CallingTelephoneNumber: ${v}`]), v).toEqual({ name: undefined, number: undefined });
    }
    expect(await caller(["From: NuPoint Voice Mail <np@x.test>", "To: 4021@x.test", "Subject: Voice Message from Unknown Caller MB:4021"])).toEqual({ name: undefined, number: undefined });
  });

  it("never splits a bare number into a name and a number", async () => {
    expect(await caller(["From: Voice Mail <vm@x.test>", "Subject: Voice message from 4085550123"])).toEqual({ name: undefined, number: "4085550123" });
    expect(await caller(["From: Voice Mail <vm@x.test>", "Subject: Message from +1 (408) 555-0123"])).toEqual({ name: undefined, number: "+1 (408) 555-0123" });
  });

  it("page counts, durations and the recipient's own mailbox are never the caller's number", async () => {
    expect(await caller(["From: Fax Server <fax@x.test>", "Subject: Fax from Contoso Reception (1 page)", "Message-Context: voice-message"])).toEqual({ name: "Contoso Reception", number: undefined });
    expect(await caller(["From: UnityConnection@cuc.test", "Subject: Message from Ann Lee (00:02)"])).toEqual({ name: "Ann Lee", number: undefined });
    expect(await caller(["From: NuPoint Voice Mail <np@x.test>", "To: 4021@x.test", "Subject: Voice Message from Ann Lee MB:4021"])).toEqual({ name: "Ann Lee", number: undefined });
    expect(await caller(["From: NuPoint Voice Mail <np@x.test>", "To: 4021@x.test", "Subject: Voice Message from 4021 MB:4021"])).toEqual({ name: undefined, number: undefined });
  });

  it("reads the notification templates in the body when headers and subject say nothing", async () => {
    expect(await caller(["From: Asterisk PBX <a@x.test>", "Subject: [PBX]: New message 1 in mailbox 4711"], "Dear Carol:\r\n\r\n\tJust wanted to let you know you were just left a 0:02 long message (number 1)\r\nin mailbox 4711 from \"Bob Smith\" <015112345678>, on Tuesday so you might"))
      .toEqual({ name: "Bob Smith", number: "015112345678" });
    expect(await caller(["From: Voicemail <vm@x.test>", "Subject: Voicemail"], "This email contains a voicemail message.\r\nFrom: Tom McGuinness at ext.2000\r\nLength: 0:04"))
      .toEqual({ name: "Tom McGuinness", number: "2000" });
    // Free prose is not a template: "from Gina Holt is attached" names nobody.
    expect((await caller(["From: Voicemail <vm@x.test>", "Subject: Voicemail"], "A voice message from Gina Holt is attached.")).name).toBeUndefined();
  });
});

describe("class, urgency and sensitivity", () => {
  const parse = (headers: string[]) => parseVoiceMessage(msg(headers));
  it("Message-Context and Content-Class come before the parts", async () => {
    expect((await parse(["From: a@x.test", "Message-Context: fax-message"])).class).toBe("fax");
    expect((await parse(["From: a@x.test", "Content-Class: fax-ca"])).class).toBe("fax");
    expect((await parse(["From: a@x.test", "Content-Class: voice-ca"])).class).toBe("voice");
    expect((await parse(["From: a@x.test"])).class).toBe("voice"); // an audio part
  });
  it("Asterisk's Urgent flag, Importance, Priority, X-Priority, in that order", async () => {
    expect((await parse(["From: a@x.test", "X-Asterisk-VM-Flag: Urgent", "Importance: low"])).importance).toBe("high");
    expect((await parse(["From: a@x.test", "Importance: low", "X-Priority: 1"])).importance).toBe("low");
    expect((await parse(["From: a@x.test", "Priority: non-urgent"])).importance).toBe("low");
    expect((await parse(["From: a@x.test", "X-Priority: 2 (High)"])).importance).toBe("high");
    expect((await parse(["From: a@x.test", "Subject: [PBX]: New Urgent message 1 in mailbox 4711"])).importance).toBe("high");
    expect((await parse(["From: a@x.test"])).importance).toBe("normal");
  });
  it("Sensitivity: Personal, Private, Company-Confidential", async () => {
    expect((await parse(["From: a@x.test", "Sensitivity: Personal"])).sensitivity).toBe("personal");
    expect((await parse(["From: a@x.test", "Sensitivity: Private"])).sensitivity).toBe("private");
    expect((await parse(["From: a@x.test", "Sensitivity: Company-Confidential"])).sensitivity).toBe("confidential");
    expect((await parse(["From: a@x.test", "Subject: Private Message from Ivy Chen"])).sensitivity).toBe("private");
  });
});

describe("duration", () => {
  it("a header first, then the audio, then the body text", async () => {
    const m = await parseVoiceMessage(msg(["From: a@x.test", "X-Asterisk-VM-Duration: 42"], "Length: 0:09", 2));
    expect(messageDuration(m).seconds).toBe(42);
    const noHeader = await parseVoiceMessage(msg(["From: a@x.test"], "Length: 0:09", 2));
    expect(messageDuration(noHeader).seconds).toBe(2); // the WAV's own length
    expect(messageDuration(noHeader, [2.4]).seconds).toBe(2.4); // measured while transcoding
    expect(messageDuration({ ...noHeader, recordings: [] }).seconds).toBe(9); // the body, last
  });
  it("absurd header values are not believed", async () => {
    const m = await parseVoiceMessage(msg(["From: a@x.test", "Content-Duration: 999999999"], "", 3));
    expect(messageDuration(m).seconds).toBe(3);
  });
  it("reads durations as people write them", () => {
    expect(spokenDuration("0:02")).toBe(2);
    expect(spokenDuration("1 minute 5 seconds")).toBe(65);
    expect(spokenDuration("2 min 3 sec")).toBe(123);
    expect(spokenDuration("45 seconds")).toBe(45);
    expect(spokenDuration("0:15 seconds")).toBe(15);
    expect(spokenDuration("1:02:05")).toBe(3725);
  });
  it("subjects show m:ss, and h:mm:ss from an hour on", async () => {
    expect(formatDuration(42)).toBe("0:42");
    expect(formatDuration(65)).toBe("1:05");
    expect(formatDuration(3725)).toBe("1:02:05");
    const m = await parseVoiceMessage(msg(["From: a@x.test", "X-VoiceMessageSenderName: Ann Lee", "X-CallingTelephoneNumber: +49 30 123456", "X-VoiceMessageDuration: 3725"]));
    expect(toVoicemailItem(m, "k", false).subject).toBe("Voice message from Ann Lee (+49 30 123456), 1:02:05");
  });
});
