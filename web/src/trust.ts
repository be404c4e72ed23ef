// Whether a mail is marked by our server as claiming one of our own domains without having been
// sent by a signed-in user (issue 13 item 15). The inbound MX puts, at the top,
//   Authentication-Results: <hostname>; auth=none; x-bulwark=local-domain-unauthenticated
// and strips every Authentication-Results field for its own hostname that came from outside.
import type { Email } from './jmap';

/** The JMAP Email/get property (RFC 8621 §4.1.3) with every Authentication-Results field, in order. */
export const AUTH_RESULTS_PROPERTY = 'header:Authentication-Results:asText:all' as const;

const MARK = 'local-domain-unauthenticated';

/** RFC 8601 §2.2: `authserv-id [version] ; resinfo ; …` (CFWS allowed around the parts). */
export function parseAuthResults(value: string): { authservId: string; results: Record<string, string> } {
  const withoutComments = value.replace(/\([^()]*\)/g, ' ');
  const [head, ...rest] = withoutComments.split(';');
  const authservId = (head.trim().split(/\s+/)[0] ?? '').toLowerCase();
  const results: Record<string, string> = {};
  for (const part of rest) {
    const m = /^\s*([A-Za-z0-9_.-]+)\s*=\s*([A-Za-z0-9_.-]+)/.exec(part);
    if (m) results[m[1].toLowerCase()] = m[2].toLowerCase();
  }
  return { authservId, results };
}

/**
 * True when the topmost Authentication-Results field (the one our server adds) carries our
 * mark. With `hostname` known, that field must also be the server's own (its authserv-id);
 * without it the topmost is trusted: the server removes forged fields for its own name, and a
 * forged mark could only ever add a warning, never hide one.
 */
export function isLocalDomainUnauthenticated(e: Pick<Email, typeof AUTH_RESULTS_PROPERTY>, hostname?: string): boolean {
  const fields = e[AUTH_RESULTS_PROPERTY];
  if (!Array.isArray(fields) || fields.length === 0 || typeof fields[0] !== 'string') return false;
  const top = parseAuthResults(fields[0]);
  if (hostname && top.authservId !== hostname.toLowerCase()) return false;
  return top.results['x-bulwark'] === MARK;
}

export function unauthenticatedWarning(address: string): string {
  return `This message claims to be from ${address} but was not sent by a signed-in user of this server — be careful with links and requests for passwords.`;
}
