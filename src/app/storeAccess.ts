/**
 * The one way the app opens a voice mailbox: the link's credential (its own password or the
 * endpoint's super user, src/app/credentials.ts), through the lockout gate
 * (src/app/credentialGate.ts), within the store's connection budget across all instances
 * (src/app/connectionBudget.ts). Sync runs of every kind and the operator's test login use it.
 */
import { openVoiceMailbox, type VoiceMailboxOptions, type VoiceMailboxSession } from "../imap/voiceMailbox.js";
import type { MailboxLink } from "../state/stateStore.js";
import { gatedLogin, type GateOptions } from "./credentialGate.js";
import { loginCredential } from "./credentials.js";
import type { Deps } from "./deps.js";
import { takeConnection } from "./connectionBudget.js";
import { protocolLogFor } from "./protocolTrace.js";

export async function openLinkedMailbox(deps: Deps, link: Pick<MailboxLink, "linkId" | "endpointId" | "voiceMailbox">, options: VoiceMailboxOptions, gate: GateOptions = {}): Promise<VoiceMailboxSession> {
  const loaded = await loginCredential(deps, link);
  const protocolLog = await protocolLogFor(deps, link);
  const cred = protocolLog ? { ...loaded, endpoint: { ...loaded.endpoint, protocolLog } } : loaded;
  const budget = cred.endpoint.connectionBudget;
  let release = () => undefined as void;
  try {
    // The budget is taken inside the gate: a stopped credential costs no slot.
    const session = await gatedLogin(deps, cred, async () => {
      if (budget) release = await takeConnection(deps, cred.endpointId, link.voiceMailbox, budget);
      return openVoiceMailbox(cred.endpoint, link.voiceMailbox, options);
    }, gate);
    return { ...session, close: async () => { try { await session.close(); } finally { release(); } } };
  } catch (e) {
    release();
    throw e;
  }
}
