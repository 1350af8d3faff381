/**
 * Preloaded into the test world's Azurite (test/harness/azurite.ts): its point operations on a
 * table entity (get, insert, upsert, merge, delete) look the entity up with LokiJS
 * `findOne({ PartitionKey, RowKey })`. LokiJS uses a binary index only for the first property
 * of a query and filters the rest linearly, so each point operation scanned the whole
 * partition: on a 10,000-message mailbox (one partition of ~30,000 rows: records and their
 * index rows) Azurite spent most of its CPU in those scans and the voicemail bench measured
 * Azurite, not the connector. Azure Table Storage serves a point operation by its full key at a
 * cost that does not grow with the partition
 * (https://learn.microsoft.com/en-us/azure/storage/tables/table-storage-design-guidelines,
 * "point queries"). Same query, same result (an AND of two equalities), only the
 * lookup order changes: RowKey first, through its index.
 */
"use strict";
const path = require("node:path");
const azuriteDir = path.dirname(require.resolve("azurite/package.json"));
const Loki = require(require.resolve("lokijs", { paths: [azuriteDir] }));
if (!Loki.Collection || typeof Loki.Collection.prototype.findOne !== "function") throw new Error("azuritePointReads: LokiJS has no Collection.findOne to order (Azurite or LokiJS changed)");
const findOne = Loki.Collection.prototype.findOne;
Loki.Collection.prototype.findOne = function (query) {
  if (query && typeof query === "object" && Object.keys(query).length === 2 && "PartitionKey" in query && "RowKey" in query) {
    return findOne.call(this, { RowKey: query.RowKey, PartitionKey: query.PartitionKey });
  }
  return findOne.call(this, query);
};
