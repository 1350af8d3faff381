/** CLI wiring of `umconnect credentials ...` (logic in src/admin/credentialsAdmin.ts). */
import fs from "node:fs";
import type { Deps } from "../app/deps.js";
import { importLinkPasswords, listCredentials, rotateEndpointPassword, rotateLinkPassword, setLinkPassword } from "../admin/credentialsAdmin.js";
import { readPassword } from "./prompt.js";

const USAGE = "usage: umconnect credentials | credentials set <linkId> --password-prompt | credentials rotate <linkId> --password-prompt | credentials rotate --endpoint <id> --password-prompt [--mailbox M] | credentials import <file.csv>";

export interface CommandIo {
  opt(name: string): string | undefined;
  has(flag: string): boolean;
  print(human: string, data: unknown): void;
  err(s: string): void;
  /** Where the password comes from (tests); the terminal or stdin otherwise. */
  password?: () => Promise<string>;
}

export async function credentialsCommand(deps: Deps, args: string[], io: CommandIo): Promise<number> {
  const [sub, target] = args;
  const ask = () => (io.password ?? (() => readPassword("password: ")))();
  const tested = (t: { ok: boolean; code?: string; message?: string } | undefined) => (!t ? "" : t.ok ? "; test login ok" : `; test login FAILED: ${t.code}: ${t.message}`);
  if (!sub) {
    const r = await listCredentials(deps);
    io.print(r.stopped.map((b) => `${b.key}  ${b.state} since ${b.since}  next try ${b.nextAttemptAt}  store said "${b.answer}"`).join("\n") || "(no credential is stopped)", r);
    return 0;
  }
  if (sub === "import") {
    if (!target) { io.err(USAGE); return 2; }
    const r = await importLinkPasswords(deps, fs.readFileSync(target, "utf8"));
    io.print(`stored ${r.set.length} link password(s)`, r.set);
    return 0;
  }
  if ((sub === "set" || sub === "rotate") && !io.has("password-prompt")) { io.err(`${USAGE}\n(passwords are never taken from the command line)`); return 2; }
  if (sub === "rotate" && io.opt("endpoint")) {
    const r = await rotateEndpointPassword(deps, io.opt("endpoint")!, await ask(), io.opt("mailbox"));
    io.print(`endpoint ${r.endpointId}: new version of secret ${r.secretName}${tested(r.test)}`, r);
    return r.test && !r.test.ok ? 1 : 0;
  }
  if ((sub === "set" || sub === "rotate") && target) {
    const r = sub === "set" ? await setLinkPassword(deps, target, await ask()) : await rotateLinkPassword(deps, target, await ask());
    io.print(`link ${r.linkId}: password stored as secret ${r.secretName}${tested(r.test)}`, r);
    return r.test && !r.test.ok ? 1 : 0;
  }
  io.err(USAGE);
  return 2;
}
