/**
 * Page count of a fax document, for PidTagFaxNumberOfPages (MS-OXPROPS 2.696) when the message
 * does not say (X-FaxNumberOfPages, OMTP VVM X-Content-Pages):
 *  - TIFF (TIFF 6.0 section 2, RFC 3302 TIFF-F): one image file directory (IFD) per page,
 *    chained by "next IFD" offsets;
 *  - PDF (ISO 32000-1 7.7.3.2): the root page tree node's /Count, else the /Type /Page objects.
 * Undefined when the document cannot be read; a broken fax is still delivered.
 */
export function faxPageCount(bytes: Buffer, contentType: string): number | undefined {
  const head = bytes.subarray(0, 5).toString("latin1");
  if (head.startsWith("II*\0") || head.startsWith("MM\0*")) return tiffPages(bytes);
  if (head.startsWith("%PDF-") || /pdf/i.test(contentType)) return pdfPages(bytes);
  return undefined;
}

function tiffPages(b: Buffer): number | undefined {
  if (b.length < 8) return undefined;
  const le = b[0] === 0x49;
  const u16 = (at: number) => (le ? b.readUInt16LE(at) : b.readUInt16BE(at));
  const u32 = (at: number) => (le ? b.readUInt32LE(at) : b.readUInt32BE(at));
  const seen = new Set<number>();
  let pages = 0;
  for (let ifd = u32(4); ifd !== 0; ) {
    // A loop or an offset past the end ends the count (hostile or truncated files).
    if (seen.has(ifd) || ifd + 2 > b.length || seen.size > 10_000) break;
    seen.add(ifd);
    const entries = u16(ifd);
    const next = ifd + 2 + entries * 12;
    pages++;
    if (next + 4 > b.length) break;
    ifd = u32(next);
  }
  return pages || undefined;
}

function pdfPages(b: Buffer): number | undefined {
  const text = b.toString("latin1");
  let root = 0;
  for (const m of text.matchAll(/\/Type\s*\/Pages\b[^>]*?\/Count\s+(\d+)|\/Count\s+(\d+)[^>]*?\/Type\s*\/Pages\b/g)) {
    root = Math.max(root, Number(m[1] ?? m[2]));
  }
  if (root > 0) return root;
  const pages = [...text.matchAll(/\/Type\s*\/Page\b(?!s)/g)].length;
  return pages || undefined;
}
