/**
 * The one way the app opens a voice mailbox: the link's credential (its own password or the
 * endpoint's super user, src/app/credentials.ts), through the lockout gate
 * (src/app/credentialGate.ts). Sync runs of every kind and the operator's test login use it.
 */
import { openVoiceMailbox, type VoiceMailboxOptions, type VoiceMailboxSession } from "../imap/voiceMailbox.js";
import type { MailboxLink } from "../state/stateStore.js";
import { gatedLogin, type GateOptions } from "./credentialGate.js";
import { loginCredential } from "./credentials.js";
import type { Deps } from "./deps.js";

export async function openLinkedMailbox(deps: Deps, link: Pick<MailboxLink, "linkId" | "endpointId" | "voiceMailbox">, options: VoiceMailboxOptions, gate: GateOptions = {}): Promise<VoiceMailboxSession> {
  const cred = await loginCredential(deps, link);
  return gatedLogin(deps, cred, () => openVoiceMailbox(cred.endpoint, link.voiceMailbox, options), gate);
}
