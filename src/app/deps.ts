/**
 * The composition root: builds the long-lived dependencies once per cold start (config,
 * logger, state store, queue client) and hands them to the function handlers. Functions
 * call getDeps(); tests and the dev host may install their own with setDeps().
 */
import { QueueClient } from "@azure/storage-queue";
import { getConfig, type Config } from "../config.js";
import { createLogger, type Logger } from "../log.js";
import { StateStore } from "../state/stateStore.js";
import { ConnectorError } from "../errors.js";

export interface Deps {
  config: Config;
  log: Logger;
  state: StateStore;
  syncQueue: QueueClient;
}

let current: Deps | undefined;

export function buildDeps(config: Config, log: Logger = createLogger({ level: config.logLevel })): Deps {
  const s = config.storage;
  if (!s.connectionString) {
    // Managed-identity storage access needs @azure/identity's credential; see docs/deploy.md.
    throw new ConnectorError("CONFIG_INVALID", "this build reaches storage through UMC_STORAGE_CONNECTION_STRING only");
  }
  return {
    config,
    log,
    state: new StateStore({ connectionString: s.connectionString, tablePrefix: s.tablePrefix }),
    syncQueue: new QueueClient(s.connectionString, s.syncQueue),
  };
}

export function getDeps(): Deps {
  current ??= buildDeps(getConfig());
  return current;
}

export function setDeps(deps: Deps | undefined): void {
  current = deps;
}
