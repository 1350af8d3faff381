/**
 * The base of every group of state rows (links, items, subscriptions, leases, config): the
 * table clients and the clock, shared so that src/state/stateStore.ts can present them as one
 * store (the facade every caller uses).
 */
import { Tables } from "./tables.js";

export abstract class StateRows {
  constructor(protected readonly tables: Tables, protected readonly now: () => number) {}
}
