/** Protocol trace redaction: credentials and message contents never reach the log. */
import { describe, expect, it } from "vitest";
import { redactProtocolLine } from "../../src/app/protocolTrace.js";

describe("protocol trace redaction", () => {
  it.each([
    ["c", 'A2 LOGIN "4711*umcmaster" "s3cret-pass"', "A2 LOGIN [credentials redacted]"],
    ["c", "A2 AUTHENTICATE PLAIN AHVzZXIAczNjcmV0LXBhc3M=", "A2 AUTHENTICATE PLAIN [credentials redacted]"],
    ["c", "AHVzZXIAczNjcmV0LXBhc3M=", "[continuation redacted]"],
    ["s", "* 1 FETCH (UID 5 BODY[] {1234}\r\nFrom: caller\r\n\r\nsecret words", "* 1 FETCH (UID 5 BODY[] [content redacted]"],
    ["s", '* 2 FETCH (UID 6 BODY[HEADER.FIELDS (X-UMC-KEY)] "X-UMC-Key: abc")', "* 2 FETCH (UID 6 BODY[HEADER.FIELDS (X-UMC-KEY)] [content redacted]"],
    ["s", "* 3 FETCH (UID 7 RFC822 {99}", "* 3 FETCH (UID 7 RFC822 [content redacted]"],
    ["c", "A9 APPEND Contacts (\\Seen) {512}", "A9 APPEND Contacts (\\Seen) {512} [literal redacted]"],
    ["s", "A3 OK [READ-WRITE] Select completed", "A3 OK [READ-WRITE] Select completed"],
    ["c", "A4 UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE 12)", "A4 UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE 12)"],
  ] as const)("%s: %s", (src, line, expected) => {
    expect(redactProtocolLine(src, line)).toBe(expected);
  });
});
