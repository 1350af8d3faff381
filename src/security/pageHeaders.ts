/**
 * Headers on every HTML page (consent, status): no scripts or other loads (CSP default-src
 * 'none'), never inside another site's frame (CSP frame-ancestors 'none', and X-Frame-Options
 * for older browsers: https://developer.mozilla.org/docs/Web/HTTP/Headers/Content-Security-Policy/frame-ancestors),
 * no type sniffing. Content on the pages is escaped where it is written.
 */
export const PAGE_SECURITY_HEADERS = {
  "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  "x-frame-options": "DENY",
  "x-content-type-options": "nosniff",
} as const;
