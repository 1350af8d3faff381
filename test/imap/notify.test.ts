/**
 * The NOTIFY adapter (src/imap/notify.ts) against the private Dovecot 2.3, through imapflow:
 * the command is accepted, each other folder's state comes at once (NOTIFY SET STATUS, RFC 5465
 * section 3.1), and a new message, a flag change and an expunge in a folder that is not
 * selected each come as a STATUS response while the connection IDLEs (sections 5.2-5.4).
 * Break seen red: the STATUS handler registered after the NOTIFY command -> the first STATUS
 * responses (sent before the command's OK) are lost, "gives each folder's state at once" fails.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDovecot, type DovecotHandle } from "../harness/dovecot.js";
import { connectMailbox, type ImapEndpoint } from "../../src/imap/endpoint.js";
import { folderMark, notifyOtherFolders, type FolderStatus } from "../../src/imap/notify.js";

let dc: DovecotHandle;
const endpoint = (): ImapEndpoint => ({
  id: "dc-notify", host: dc.host, port: dc.port, tls: "plaintext", maxConnections: 4,
  auth: { mode: "master-separator", masterUser: dc.master.user, password: dc.master.pass },
});

beforeAll(async () => { dc = await startDovecot({ users: { "4711": "pw1" } }); });
afterAll(async () => { await dc?.stop(); });

describe("NOTIFY (RFC 5465)", () => {
  it("gives each folder's state at once, then a STATUS for each change in a folder that is not selected", async () => {
    const other = await connectMailbox(endpoint(), "4711");
    await other.client.mailboxCreate("Contacts").catch(() => undefined);
    await other.client.append("Contacts", Buffer.from("Subject: first\r\n\r\ncard\r\n"));
    const watch = await connectMailbox(endpoint(), "4711", "watch");
    try {
      await watch.client.mailboxOpen("INBOX");
      const seen: Array<[string, FolderStatus]> = [];
      expect(await notifyOtherFolders(watch.client, (folder, status) => seen.push([folder, status]))).toBe(true);
      const first = seen.find(([f]) => f === "Contacts")?.[1];
      expect(first).toMatchObject({ messages: 1, uidNext: 2 });
      const idle = watch.client.idle();
      const marks = () => seen.filter(([f]) => f === "Contacts").map(([, s]) => folderMark(s));
      const changes = async (change: () => Promise<unknown>) => {
        const before = marks().length;
        await change();
        await expect.poll(() => marks().length, { timeout: 5000 }).toBeGreaterThan(before);
        return seen.filter(([f]) => f === "Contacts").at(-1)![1];
      };
      expect(await changes(() => other.client.append("Contacts", Buffer.from("Subject: second\r\n\r\ncard\r\n")))).toMatchObject({ messages: 2, uidNext: 3 });
      await other.client.mailboxOpen("Contacts");
      await changes(() => other.client.messageFlagsAdd("1", ["\\Seen"]));
      expect(await changes(() => other.client.messageDelete("1"))).toMatchObject({ messages: 1, uidNext: 3 });
      expect(new Set(marks()).size).toBe(marks().length); // every change moved the mark
      void idle;
    } finally {
      await watch.release();
      await other.release();
    }
  });

  it("returns false where the store does not offer NOTIFY", async () => {
    const watch = await connectMailbox(endpoint(), "4711", "watch");
    try {
      await watch.client.mailboxOpen("INBOX");
      watch.client.capabilities.delete("NOTIFY");
      expect(await notifyOtherFolders(watch.client, () => undefined)).toBe(false);
    } finally { await watch.release(); }
  });
});
