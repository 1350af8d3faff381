import { afterAll, beforeAll, describe, expect, it } from "vitest";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { ImapFlow } from "imapflow";
import { TableClient } from "@azure/data-tables";
import { QueueClient } from "@azure/storage-queue";
import { startAzurite, type AzuriteHandle } from "./azurite.js";
import { startDovecot, type DovecotHandle } from "./dovecot.js";

let az: AzuriteHandle;
let dc: DovecotHandle;
let pushServer: http.Server;
const pushed: Array<{ headers: http.IncomingHttpHeaders; body: { events: Array<{ event: string; user: string; uid: number }> } }> = [];

beforeAll(async () => {
  pushServer = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => { pushed.push({ headers: req.headers, body: JSON.parse(body) }); res.writeHead(204).end(); });
  });
  await new Promise<void>((r) => pushServer.listen(0, "127.0.0.1", () => r()));
  const url = `http://127.0.0.1:${(pushServer.address() as AddressInfo).port}/push`;
  [az, dc] = await Promise.all([
    startAzurite(),
    startDovecot({ users: { alice: "alicepw", bob: "bobpw" }, push: { url, headerName: "x-test", headerValue: "yes" } }),
  ]);
});
afterAll(async () => {
  await Promise.all([az?.stop(), dc?.stop()]);
  pushServer?.close();
});

const imap = (auth: { user: string; pass: string; authzid?: string; loginMethod?: string }) =>
  new ImapFlow({ host: dc.host, port: dc.port, secure: false, auth, logger: false, qresync: true });

describe("Azurite harness", () => {
  it("serves tables with ETag concurrency and queues", async () => {
    const t = TableClient.fromConnectionString(az.connectionString, "harness", { allowInsecureConnection: true });
    await t.createTable();
    await t.createEntity({ partitionKey: "p", rowKey: "r", v: 1 });
    const e = await t.getEntity("p", "r");
    await t.updateEntity({ partitionKey: "p", rowKey: "r", v: 2 }, "Merge", { etag: e.etag });
    await expect(t.updateEntity({ partitionKey: "p", rowKey: "r", v: 3 }, "Merge", { etag: e.etag })).rejects.toMatchObject({ statusCode: 412 });
    const q = new QueueClient(az.connectionString, "harness");
    await q.createIfNotExists();
    await q.sendMessage("hello");
    const got = await q.receiveMessages();
    expect(got.receivedMessageItems[0]?.messageText).toBe("hello");
  });
});

describe("Dovecot harness", () => {
  it("delivers with LDA and lets the master user in by separator and by SASL authzid", async () => {
    await dc.lda("alice", "Subject: hi\r\nMessage-Context: voice-message\r\n\r\nbody\r\n");
    const bySeparator = imap({ user: `alice*${dc.master.user}`, pass: dc.master.pass });
    await bySeparator.connect();
    const s = await bySeparator.status("INBOX", { messages: true, highestModseq: true });
    await bySeparator.logout();
    expect(s && s.messages).toBe(1);
    const byAuthzid = imap({ user: dc.master.user, pass: dc.master.pass, authzid: "alice", loginMethod: "AUTH=PLAIN" });
    await byAuthzid.connect();
    expect(byAuthzid.capabilities.has("QRESYNC")).toBe(true);
    expect(byAuthzid.capabilities.has("CONDSTORE")).toBe(true);
    const s2 = await byAuthzid.status("INBOX", { messages: true });
    await byAuthzid.logout();
    expect(s2 && s2.messages).toBe(1);
  });

  it("pushes LDA deliveries and flag changes to the configured URL", async () => {
    pushed.length = 0;
    await dc.lda("bob", "Subject: push\r\n\r\nx\r\n");
    const c = imap({ user: "bob", pass: "bobpw" });
    await c.connect();
    await c.mailboxOpen("INBOX");
    await c.messageFlagsAdd("1:*", ["\\Seen"]);
    await c.logout();
    await expect.poll(() => pushed.flatMap((p) => p.body.events.map((e) => e.event)), { timeout: 5000 }).toEqual(expect.arrayContaining(["MessageNew", "FlagsSet"]));
    expect(pushed[0]?.headers["x-test"]).toBe("yes");
    expect(pushed[0]?.body.events[0]).toMatchObject({ user: "bob", uid: 1 });
  });

  it("restarts on the same port keeping the mail", async () => {
    await dc.restart();
    const c = imap({ user: "alice", pass: "alicepw" });
    await c.connect();
    const s = await c.status("INBOX", { messages: true });
    await c.logout();
    expect(s && s.messages).toBe(1);
  });
});
