/**
 * Body limits of the webhook routes, in a module of their own: functions/ reads them when it
 * registers the routes, and this keeps zod and the parsers out of the app's start-up
 * (`npm run bench -- coldstart`).
 */
/** Graph sends small batches; anything this large is not Graph. */
export const MAX_NOTIFICATION_BODY_BYTES = 1_000_000;
export const MAX_STORE_BODY_BYTES = 256 * 1024;
