/**
 * The mass-delete guard shared by the two-way syncs (vdirsyncer's StorageEmpty, isync's
 * expunge limits): deletes on one side are caused by the other side losing items; when that
 * side emptied, or a run would delete more than the allowed share, the deletes are held back.
 */

export interface MassDeleteLimits {
  /** Largest share (0..1) of the linked items one run may delete on a side. */
  massDeleteMaxShare: number;
  /** Below this many linked items the share rule does not apply (deleting 1 of 2 is normal). */
  massDeleteMinItems?: number;
  /** An administrator lifted the guard for this mailbox. */
  massDeleteOverride?: boolean;
}

export interface MassDelete {
  side: "imap" | "graph"; deletes: number; known: number; emptied: boolean;
  /**
   * What the guard saw: "wipe" (a side emptied), "share" (more than the allowed share at once),
   * or "aging" (the voice store expired its oldest messages: let through, reported).
   */
  pattern: "wipe" | "share" | "aging";
  /** False when the deletes were let through (aging); they were held back otherwise. */
  refused: boolean;
}

/** Deleting the last one or two items is a user's normal action, not a wiped side. */
const EMPTIED_MIN_ITEMS = 3;

/**
 * `linked`: items both sides held; `imapPresent` / `graphPresent`: how many of them each side
 * still shows; `graphDeletes` / `imapDeletes`: the planned deletes per side.
 */
export function massDeleteCheck(c: { linked: number; imapPresent: number; graphPresent: number; graphDeletes: number; imapDeletes: number }, limits: MassDeleteLimits): MassDelete | undefined {
  if (limits.massDeleteOverride || c.linked === 0) return undefined;
  const minItems = limits.massDeleteMinItems ?? 5;
  const check = (side: "imap" | "graph", deletes: number, partnerPresent: number): MassDelete | undefined => {
    if (deletes === 0) return undefined;
    const emptied = partnerPresent === 0 && deletes >= c.linked && c.linked >= EMPTIED_MIN_ITEMS;
    if (emptied || (c.linked >= minItems && deletes / c.linked > limits.massDeleteMaxShare)) return { side, deletes, known: c.linked, emptied, pattern: emptied ? "wipe" : "share", refused: true };
    return undefined;
  };
  // Deletes in Exchange happen when the store lost items, deletes on the store when Exchange did.
  return check("graph", c.graphDeletes, c.imapPresent) ?? check("imap", c.imapDeletes, c.graphPresent);
}
