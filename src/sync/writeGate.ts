/**
 * One place that knows which port methods write (to the voice store, to Exchange, to the state
 * store), so a check can run before every write and an observer after it, without touching
 * the executors: the mailbox lease is checked before each write (a run that lost its lease
 * stops before its next write, src/sync/mailboxRun.ts), and the crash tests count writes
 * across the parallel executor and kill the worker at write N (test/harness/crashRun.ts).
 */

/** Write methods per port, by the names the executors' ports use (src/sync/ports.ts and the
 *  contacts and calendar ports). Everything else on a port only reads. */
export const WRITE_METHODS = {
  voice: ["setSeen", "remove", "restore"],
  voicemailExchange: ["create", "complete", "setRead", "remove", "adopt"],
  contactsStore: ["append", "remove"],
  contactsExchange: ["create", "update", "remove", "putPhoto"],
  calendarStore: ["append", "remove"],
  state: ["putItem", "putItems", "deleteItem", "saveCursors", "reindex"],
  mailStore: ["append", "appendMany", "setSeen", "remove"],
  mailExchange: ["setRead", "remove"],
} as const;

export interface WriteHooks {
  /** Runs before the write is started; throwing stops it (nothing is sent). A promise it
   *  returns is awaited first (tests hold a write to prove another one runs beside it). */
  before?(write: string): void | Promise<void>;
  /** Runs the moment the write has been answered, before the caller sees the answer. */
  after?(write: string): void;
}

/**
 * Wraps the named methods of `port` (which return promises) with the hooks; other members
 * are passed through unchanged. `label` names the port in the write names ("exchange.create").
 */
export function gateWrites<T extends object>(port: T, methods: readonly string[], label: string, hooks: WriteHooks): T {
  const wrapped: Record<string, unknown> = {};
  for (const m of methods) {
    const fn = (port as Record<string, unknown>)[m];
    if (typeof fn !== "function") continue;
    const name = `${label}.${m}`;
    wrapped[m] = async (...args: unknown[]) => {
      await hooks.before?.(name);
      const result: unknown = await (fn as (...a: unknown[]) => Promise<unknown>).apply(port, args);
      hooks.after?.(name);
      return result;
    };
  }
  // A view of the port: class instances (the voice mailbox session) keep their other methods,
  // called on the instance itself.
  return new Proxy(port, {
    get: (target, key) => {
      if (typeof key === "string" && key in wrapped) return wrapped[key];
      const v: unknown = Reflect.get(target, key);
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/** The voicemail executor's ports with every write hooked. */
export function gateVoicemailPorts<P extends { voice: object; exchange: object; state: object }>(p: P, hooks: WriteHooks): P {
  return {
    ...p,
    voice: gateWrites(p.voice, WRITE_METHODS.voice, "voice", hooks),
    exchange: gateWrites(p.exchange, WRITE_METHODS.voicemailExchange, "exchange", hooks),
    state: gateWrites(p.state, WRITE_METHODS.state, "state", hooks),
  };
}

/** The contacts executor's ports with every write hooked (conflict records included). */
export function gateContactsPorts<P extends { store: object; exchange: object; state: object; putConflict: (...a: never[]) => Promise<unknown> }>(p: P, hooks: WriteHooks): P {
  const conflicts = gateWrites({ putConflict: p.putConflict }, ["putConflict"], "state", hooks);
  return {
    ...p,
    store: gateWrites(p.store, WRITE_METHODS.contactsStore, "store", hooks),
    exchange: gateWrites(p.exchange, WRITE_METHODS.contactsExchange, "exchange", hooks),
    state: gateWrites(p.state, WRITE_METHODS.state, "state", hooks),
    putConflict: conflicts.putConflict,
  };
}

/** The calendar mirror's ports with every write hooked (it writes the store and the state only). */
export function gateCalendarPorts<P extends { store: object; state: object }>(p: P, hooks: WriteHooks): P {
  return {
    ...p,
    store: gateWrites(p.store, WRITE_METHODS.calendarStore, "store", hooks),
    state: gateWrites(p.state, WRITE_METHODS.state, "state", hooks),
  };
}

/** Hooks that stop a run before its next write once its lease is lost. */
export const leaseHooks = (lease: { assertHeld(): void }): WriteHooks => ({ before: () => lease.assertHeld() });

/** The e-mail copy's ports with every write hooked (src/sync/mailSync.ts). */
export function gateMailPorts<P extends { store: object; exchange: object; state: object }>(p: P, hooks: WriteHooks): P {
  return {
    ...p,
    store: gateWrites(p.store, WRITE_METHODS.mailStore, "store", hooks),
    exchange: gateWrites(p.exchange, WRITE_METHODS.mailExchange, "exchange", hooks),
    state: gateWrites(p.state, WRITE_METHODS.state, "state", hooks),
  };
}
