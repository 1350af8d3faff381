/**
 * IMAP NOTIFY (RFC 5465): one connection, with INBOX selected and IDLEing, also hears about the
 * user's other folders (contacts, the e-mail copies' folder, mirrored greetings), so a store
 * without a push hook reports every folder's changes, not only INBOX's.
 *
 * `NOTIFY SET STATUS (SELECTED ...) (PERSONAL ...)` asks for the selected mailbox's events as
 * before (EXISTS, EXPUNGE, FETCH: RFC 5465 section 5.1, "MUST NOT send" what is not asked for,
 * so SELECTED is listed) and, for every other mailbox of the user, an untagged STATUS response
 * when a message arrives, leaves or changes its flags (sections 5.2-5.4; with CONDSTORE enabled
 * it carries HIGHESTMODSEQ). The STATUS keyword makes the server send each mailbox's STATUS at
 * once (section 3.1): the state the watch starts from, compared with where the last watch left.
 * Events come while IDLE (section 3: NOTIFY responses may be sent at any time).
 *
 * imapflow has no NOTIFY command and passes an unsolicited STATUS to no one: the command goes
 * through its `exec` and the responses through its table of untagged handlers (both internal;
 * checked against imapflow 2.10.2 and Dovecot 2.3, test/imap/notify.test.ts).
 */
import type { ImapFlow } from "imapflow";
import { decodePath } from "imapflow/lib/tools.js";

/** What a STATUS response said of a folder, merged over time (each response may carry only some items). */
export interface FolderStatus { messages?: number; uidNext?: number; highestModseq?: string }

/** A short mark of a folder's state: it differs once anything changed there (HIGHESTMODSEQ, else UIDNEXT + MESSAGES). */
export const folderMark = (s: FolderStatus): string => (s.highestModseq !== undefined ? `m${s.highestModseq}` : `u${s.uidNext ?? ""}:${s.messages ?? ""}`);

export const canNotify = (client: ImapFlow) => client.capabilities.has("NOTIFY");

interface Untagged { attributes?: Array<{ value?: unknown } | Array<{ value?: unknown }>> }
type Handlers = Record<string, ((u: Untagged) => Promise<void>) | null | undefined>;

const EVENTS = ["MessageNew", "MessageExpunge", "FlagChange"].map((value) => ({ type: "ATOM", value }));

/**
 * Sets NOTIFY on a connection whose INBOX is selected. `onStatus` gets every other folder's
 * STATUS (the first ones right away: the STATUS keyword), merged with what came before. False
 * when the store has no NOTIFY or refuses it (the watch is then INBOX's IDLE alone). The
 * handler stays for the connection's life; the connection is the watch's own.
 */
export async function notifyOtherFolders(client: ImapFlow, onStatus: (folder: string, status: FolderStatus) => void): Promise<boolean> {
  if (!canNotify(client)) return false;
  const known = new Map<string, FolderStatus>();
  const handlers = (client as unknown as { untaggedHandlers: Handlers }).untaggedHandlers;
  handlers.STATUS = async (u) => {
    const [name, list] = u.attributes ?? [];
    if (!name || Array.isArray(name) || !Array.isArray(list)) return;
    const folder = decodePath(client, String(name.value ?? ""));
    const s = { ...known.get(folder) };
    for (let i = 0; i + 1 < list.length; i += 2) {
      const key = String(list[i]?.value ?? "").toUpperCase();
      const value = String(list[i + 1]?.value ?? "");
      if (key === "MESSAGES") s.messages = Number(value);
      else if (key === "UIDNEXT") s.uidNext = Number(value);
      else if (key === "HIGHESTMODSEQ") s.highestModseq = value;
    }
    known.set(folder, s);
    onStatus(folder, s);
  };
  const exec = (client as unknown as { exec(cmd: string, attrs: unknown[]): Promise<{ next(): void }> }).exec.bind(client);
  try {
    const r = await exec("NOTIFY", [{ type: "ATOM", value: "SET" }, { type: "ATOM", value: "STATUS" },
      [{ type: "ATOM", value: "SELECTED" }, EVENTS], [{ type: "ATOM", value: "PERSONAL" }, EVENTS]]);
    r.next();
    return true;
  } catch {
    handlers.STATUS = undefined;
    return false;
  }
}
