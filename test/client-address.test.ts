// The client address the throttles, the audit trail and the signing evidence record. In Azure the front
// end appends the address it saw to X-Forwarded-For, and only that last entry can be trusted; the local
// host overwrites the header with the socket address, so no HTTP test reaches these cases. They are
// checked here on the function itself, with the platform's own HttpRequest.
import { HttpRequest } from '@azure/functions';
import { describe, expect, test } from 'vitest';
import { clientIpOf } from '../lib/endpoint';

function requestWith(forwardedFor?: string): HttpRequest {
  const headers: Record<string, string> = forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor };
  return new HttpRequest({ url: 'https://lms.example/api/auth/login', method: 'POST', headers });
}

describe('clientIpOf', () => {
  test('takes the entry the platform appended, not the ones a client wrote before it', () => {
    // A client trying to pass as 10.0.0.1 to dodge its own login throttle.
    expect(clientIpOf(requestWith('10.0.0.1, 192.0.2.7'))).toBe('192.0.2.7');
    expect(clientIpOf(requestWith('1.1.1.1,2.2.2.2,  198.51.100.23  '))).toBe('198.51.100.23');
  });

  test('drops the port Azure adds, for IPv4 and bracketed IPv6', () => {
    expect(clientIpOf(requestWith('203.0.113.9:51234'))).toBe('203.0.113.9');
    expect(clientIpOf(requestWith('[2001:db8::1]:443'))).toBe('2001:db8::1');
    expect(clientIpOf(requestWith('[2001:db8::2]'))).toBe('2001:db8::2');
    expect(clientIpOf(requestWith('2001:db8::3'))).toBe('2001:db8::3');
  });

  test('no header, an empty last entry or something that is not an address gives no address', () => {
    expect(clientIpOf(requestWith())).toBeNull();
    expect(clientIpOf(requestWith(''))).toBeNull();
    expect(clientIpOf(requestWith('192.0.2.7,'))).toBeNull();
    // Stored in an inet column and shown to staff: anything else must never get through.
    for (const junk of [
      "'; drop table users; --",
      '<script>',
      'localhost',
      '999.1.1.1:80x',
      '999.1.1.1',
      '256.0.0.1:80',
      'ff::gg',
      '1.2.3.4.5',
    ]) {
      expect(clientIpOf(requestWith(`192.0.2.7, ${junk}`)), junk).toBeNull();
    }
  });
});
