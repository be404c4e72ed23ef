import { describe, expect, it } from 'vitest';
import { AUTH_RESULTS_PROPERTY, isLocalDomainUnauthenticated, parseAuthResults, unauthenticatedWarning } from '../src/trust';
import { FULL_PROPERTIES } from '../src/jmap';

const MARK = ' mail.example.test; auth=none; x-bulwark=local-domain-unauthenticated';
const mail = (fields: string[] | null | undefined) => ({ [AUTH_RESULTS_PROPERTY]: fields });

describe('unauthenticated local-domain mail (issue 13 item 15)', () => {
  it('the reader asks the server for every Authentication-Results field', () => {
    expect(FULL_PROPERTIES).toContain('header:Authentication-Results:asText:all');
  });
  it('parses RFC 8601 fields with comments and versions', () => {
    expect(parseAuthResults(' MX.Example.Test 1 (our MX); spf=pass (sender ok) smtp.mailfrom=a@b; x-bulwark = local-domain-unauthenticated')).toEqual({
      authservId: 'mx.example.test',
      results: { spf: 'pass', 'x-bulwark': 'local-domain-unauthenticated' },
    });
  });
  it('the topmost field with our mark warns', () => {
    expect(isLocalDomainUnauthenticated(mail([MARK]))).toBe(true);
    expect(isLocalDomainUnauthenticated(mail([MARK, ' other.test; spf=pass']))).toBe(true);
    expect(isLocalDomainUnauthenticated(mail([MARK]), 'mail.example.test')).toBe(true);
    expect(isLocalDomainUnauthenticated(mail([MARK]), 'MAIL.example.TEST')).toBe(true);
  });
  it('ordinary mail, a mark below the top or one from another authserv-id (hostname known) does not', () => {
    expect(isLocalDomainUnauthenticated(mail(undefined))).toBe(false);
    expect(isLocalDomainUnauthenticated(mail(null))).toBe(false);
    expect(isLocalDomainUnauthenticated(mail([]))).toBe(false);
    expect(isLocalDomainUnauthenticated(mail([' mail.example.test; auth=pass']))).toBe(false);
    expect(isLocalDomainUnauthenticated(mail([' other.test; spf=pass', MARK]))).toBe(false);
    expect(isLocalDomainUnauthenticated(mail([' evil.test; x-bulwark=local-domain-unauthenticated']), 'mail.example.test')).toBe(false);
    expect(isLocalDomainUnauthenticated(mail([' mail.example.test; x-bulwark=local-domain-unauthenticated-not']))).toBe(false);
  });
  it('the warning names the claimed sender', () => {
    expect(unauthenticatedWarning('alice@example.test')).toBe(
      'This message claims to be from alice@example.test but was not sent by a signed-in user of this server — be careful with links and requests for passwords.',
    );
  });
});
