/**
 * What a voice store's refusal of a login means: the credentials are wrong (stop using them:
 * stores lock accounts after repeated failures), or the store is busy / at a connection limit /
 * briefly unable to check them (back off and try again), or it cannot be told.
 *
 * The response code decides first (RFC 5530 section 3, IANA "IMAP Response Codes" registry):
 *  - AUTHENTICATIONFAILED: "Authentication failed for some reason on which the server is
 *    unwilling to elaborate" -> rejected;
 *  - AUTHORIZATIONFAILED: the credentials are fine but may not act as the requested
 *    identity (a master user without the right to open that mailbox) -> rejected;
 *  - EXPIRED: "Either authentication succeeded or the server no longer had the necessary data;
 *    either way, access is no longer permitted using that passphrase" -> rejected;
 *  - UNAVAILABLE: "Temporary failure because a subsystem is down" -> busy;
 *  - LIMIT: "The operation ran up against an implementation limit of some kind, such as the
 *    number of ... connections" -> busy; INUSE: "An operation has not been carried out because
 *    it involves sawing off a branch someone else is sitting on" -> busy;
 *  - PRIVACYREQUIRED (TLS needed), CONTACTADMIN -> rejected (a person must act; retrying with
 *    the same settings cannot help).
 *
 * Then the text, per vendor, for stores that answer without a code:
 *  - Dovecot (doc.dovecot.org, settings mail_max_userip_connections; src/imap/imap-client.c and
 *    src/login-common/client-common-auth.c): "Maximum number of connections from user+IP
 *    exceeded (mail_max_userip_connections=N)" as a BYE after the login, and
 *    "[UNAVAILABLE] Temporary authentication failure." when its auth process is down;
 *    a wrong password is "[AUTHENTICATIONFAILED] Authentication failed.".
 *  - Microsoft Exchange / Exchange Online IMAP4 (learn.microsoft.com, "Configure IMAP4
 *    settings", MaxConnectionsPerUser / MaxConnectionFromSingleIP): "User is authenticated but
 *    not connected." comes after the password was accepted, so it is never a wrong password,
 *    and "Request is throttled ... Backoff" (imapsync FAQ "Exchange", shared/reference
 *    anchors.md [IS3]); its wrong-password answer "AUTHENTICATE failed." / "LOGIN failed." is
 *    the same text it gives in other states (see "ambiguous" below).
 *  - Generic wordings seen in voice stores' IMAP front ends: "too many connections",
 *    "connection limit", "try again later", "server busy".
 * Text that matches neither a limit nor a known wrong-password wording, with no response code,
 * is "ambiguous": some stores (Exchange among them, see above) answer a plain
 * "NO AUTHENTICATE failed" both for a wrong password and while the user's connections are
 * all taken. The caller treats one ambiguous failure as a reason to back off, and a second in
 * a row as rejected (src/app/credentialGate.ts).
 */

export type LoginVerdict = "rejected" | "busy" | "ambiguous";

const REJECTED_CODES = new Set(["AUTHENTICATIONFAILED", "AUTHORIZATIONFAILED", "EXPIRED", "PRIVACYREQUIRED", "CONTACTADMIN"]);
const BUSY_CODES = new Set(["UNAVAILABLE", "LIMIT", "INUSE", "OVERQUOTA", "SERVERBUG"]);

/** Wordings that mean "busy, at a limit, try later" (vendor sources above). */
const BUSY_TEXT = /maximum number of (connections|sessions)|too many (open |simultaneous |concurrent )?(connections|sessions|logins)|connection limit|user is authenticated but not connected|request is throttled|try (again )?later|temporar(y|ily)|server (is )?busy|unavailable/i;
/** Wordings that say the password (or the account) is wrong, beyond a generic "failed". */
const REJECTED_TEXT = /invalid (credentials|password|user ?name)|wrong password|password (has )?expired|account (is )?(locked|disabled)|authentication failed\.?\s*$/i;

/** The bracketed response code of an IMAP status text, upper-cased ("[LIMIT] ..." -> LIMIT). */
export function responseCodeOf(text: string | undefined): string | undefined {
  const m = /\[([A-Za-z-]+)[\] ]/.exec(text ?? "");
  return m ? m[1]!.toUpperCase() : undefined;
}

/**
 * Judges a refused login. `code` is the response code imapflow parsed (serverResponseCode),
 * `text` the server's human-readable answer.
 */
export function judgeLoginRefusal(code: string | undefined, answer: string): LoginVerdict {
  // imapflow hands over the whole status line ("A2 NO [CODE] text"): drop tag and status.
  const text = answer.replace(/^\s*(\S+\s+)?(NO|BAD|BYE)\s+/i, "");
  const c = (code || responseCodeOf(text))?.toUpperCase();
  if (c && REJECTED_CODES.has(c)) return "rejected";
  if (c && BUSY_CODES.has(c)) return "busy";
  if (BUSY_TEXT.test(text)) return "busy";
  // "Authentication failed." (Dovecot's wording, also without its code) is a wrong password;
  // Exchange's "AUTHENTICATE failed." / "LOGIN failed." does not match and stays ambiguous.
  if (REJECTED_TEXT.test(text)) return "rejected";
  return "ambiguous";
}
