/**
 * MULTIAPPEND (RFC 3502): several messages appended to one folder in one APPEND command, one
 * round trip instead of one per message; all or none are stored (section 2: a NO stores none).
 * imapflow has no MULTIAPPEND: its `exec` sends the command with the library's own encoder.
 * The new UIDs come from UIDPLUS's APPENDUID, whose UID set lists them in append order
 * (RFC 4315 section 3).
 *
 * Literals: imapflow's encoder makes every literal over 4096 bytes synchronizing (it asks for
 * LITERAL+ only up to LITERAL-'s limit), so a batch of 50 voice messages waited for 50 "+"
 * continuations from the server, each a round trip through both processes' scheduling; on a
 * loaded machine that was most of a batch's time. Where the server offers LITERAL+ (RFC 7888
 * section 3: a literal of any size may be non-synchronizing), only the first message's literal
 * waits for the "+" (imapflow sends that part); on it the rest of the command goes out at once,
 * every further message as a `{size+}` literal, as mbsync sends its APPENDs.
 */
import type { ImapFlow } from "imapflow";
import { expandUidSet, imapDateTime } from "./mirrorFolder.js";

export interface AppendItem { source: Buffer; flags: string[]; internalDate?: Date }

/** Whether the server takes several messages in one APPEND (its MULTIAPPEND capability). */
export const canMultiAppend = (client: ImapFlow) => client.capabilities.has("MULTIAPPEND");

type Exec = (cmd: string, attrs: unknown[], options?: { onPlusTag?: () => Promise<void> | void }) => Promise<{ response: { attributes?: Array<{ section?: Array<{ value?: unknown }> }> }; next(): void }>;

/** The largest literal imapflow sends non-synchronizing itself (LITERAL-, RFC 7888 section 4). */
const LITERAL_MINUS_MAX = 4096;

/** A flag that may be written as an atom (RFC 3501 section 9: flag-keyword = atom, system flags "\" atom). */
const ATOM_FLAG = /^\\?[^\x00-\x20\x7f(){%*"\\\]]+$/;

/** `(flags) "date" {size+}\r\n` for one message after the first (RFC 3502 append-message, RFC 7888 literal+). */
function nonSyncHeader(it: AppendItem): Buffer {
  return Buffer.from(` (${it.flags.join(" ")})${it.internalDate ? ` "${imapDateTime(it.internalDate)}"` : ""} {${it.source.length}+}\r\n`, "latin1");
}

/**
 * Sends one MULTIAPPEND; returns the new UIDs in order, or `undefined` when the server gave no
 * usable APPENDUID (the caller then finds the copies by their identity).
 */
export async function multiAppend(client: ImapFlow, folder: string, items: readonly AppendItem[]): Promise<number[] | undefined> {
  const c = client as unknown as { exec: Exec; write(chunk: Buffer): void };
  const exec = c.exec.bind(client);
  const attrs: unknown[] = [{ type: "STRING", value: folder }];
  const messageAttrs = (it: AppendItem) => {
    attrs.push(it.flags.map((f) => ({ type: "ATOM", value: f })));
    if (it.internalDate) attrs.push({ type: "STRING", value: imapDateTime(it.internalDate) });
    attrs.push({ type: "LITERAL", value: it.source });
  };
  // The hook needs the first literal to be a synchronizing one: imapflow sends one of up to
  // 4096 bytes non-synchronizing itself (LITERAL-), with the command's end right after it.
  const literalPlus = items.length > 1 && items[0]!.source.length > LITERAL_MINUS_MAX && client.capabilities.has("LITERAL+") && items.every((it) => it.flags.every((f) => ATOM_FLAG.test(f)));
  let options: { onPlusTag?: () => void } | undefined;
  if (literalPlus) {
    // imapflow sends up to the first literal's size and, on the server's "+", hands the rest to
    // onPlusTag (its hook for continuations): the first message, the others, the final CRLF.
    messageAttrs(items[0]!);
    let sent = false;
    options = {
      onPlusTag: () => {
        if (sent) return;
        sent = true;
        c.write(items[0]!.source);
        for (const it of items.slice(1)) { c.write(nonSyncHeader(it)); c.write(it.source); }
        c.write(Buffer.from("\r\n"));
      },
    };
  } else {
    for (const it of items) messageAttrs(it);
  }
  const r = await exec("APPEND", attrs, options);
  r.next();
  const section = r.response.attributes?.[0]?.section;
  const uids = section && String(section[0]?.value ?? "").toUpperCase() === "APPENDUID" ? expandUidSet(String(section[2]?.value ?? "")) : [];
  return uids.length === items.length ? uids : undefined;
}
