/**
 * A contact's photo between the card (PHOTO, RFC 6350 section 6.2.4, kept in the extras as a
 * data: URI in its 4.0 form) and the Exchange contact photo
 * (https://learn.microsoft.com/en-us/graph/api/profilephoto-update: image bytes, at most 4 MB).
 * A photo Exchange cannot take (too large, not an image type it reads) stays on the store,
 * whole, and the item is flagged with the reason; it is never cut or dropped.
 */
import type { ContactFields } from "./vcard.js";
import type { RefusedValue } from "./contactValidation.js";

export const PHOTO_MAX_BYTES = 4 * 1024 * 1024;
const TYPES = new Set(["image/jpeg", "image/png", "image/gif", "image/bmp"]);

export interface Photo { bytes: Buffer; contentType: string }

const isPhotoLine = (l: string) => /^(?:[A-Za-z0-9-]+\.)?PHOTO[;:]/i.test(l);

/** The image type its first bytes say, or undefined. */
export function sniffImageType(b: Buffer): string | undefined {
  if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return "image/jpeg";
  if (b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return "image/png";
  if (b.subarray(0, 4).toString("latin1") === "GIF8") return "image/gif";
  if (b.subarray(0, 2).toString("latin1") === "BM") return "image/bmp";
  return undefined;
}

/** The card's first inline photo, if any; a URI photo (http:) is not ours to fetch. */
export function cardPhoto(f: ContactFields): Photo | undefined {
  for (const l of f.extra) {
    if (!isPhotoLine(l)) continue;
    const m = l.match(/:data:([a-z]+\/[a-z0-9.+-]+);base64,([A-Za-z0-9+/=]+)$/i);
    if (m) return { contentType: m[1]!.toLowerCase(), bytes: Buffer.from(m[2]!, "base64") };
  }
  return undefined;
}

/** Whether Exchange can take the photo, or why not. */
export function photoForExchange(p: Photo): Photo | RefusedValue {
  const type = sniffImageType(p.bytes);
  if (!type || !TYPES.has(type)) return { field: "photo", message: `photo of type ${p.contentType} is not an image Exchange reads: kept on the store only` };
  if (p.bytes.length > PHOTO_MAX_BYTES) return { field: "photo", message: `photo of ${p.bytes.length} bytes is over Exchange's 4 MB: kept on the store only` };
  return { bytes: p.bytes, contentType: type };
}

/** The fields with Exchange's photo as the card's photo (the card's own line kept when the image is the same). */
export function withPhoto(f: ContactFields, p: Photo | undefined): ContactFields {
  if (!p) return f;
  const current = cardPhoto(f);
  if (current && current.bytes.equals(p.bytes)) return f;
  const line = `PHOTO:data:${sniffImageType(p.bytes) ?? p.contentType};base64,${p.bytes.toString("base64")}`;
  const at = f.extra.findIndex(isPhotoLine);
  const extra = at < 0 ? [...f.extra, line] : f.extra.map((l, i) => (i === at ? line : l));
  return { ...f, extra };
}
