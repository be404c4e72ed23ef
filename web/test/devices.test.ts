import { describe, expect, it } from 'vitest';
import { describeSession } from '../src/settings';

const CHROME = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36';

describe('signed-in devices', () => {
  it('names a web sign-in by its browser and system', () => {
    expect(describeSession(CHROME, 'web')).toBe('Chrome 156 on Linux');
    // Records written before `via` existed are web sign-ins.
    expect(describeSession(CHROME)).toBe('Chrome 156 on Linux');
  });
  it('names a JMAP client (token grant) by the first word of its user agent', () => {
    expect(describeSession('e2e-jmap-client/1.0 (linux)', 'token')).toBe('Mail app (JMAP) · e2e-jmap-client/1.0');
    expect(describeSession('', 'token')).toBe('Mail app (JMAP)');
  });
});
