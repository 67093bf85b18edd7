// The server side of NTLM for the fake Windows VM: a Type 2 challenge, and an NTLMv2 check of the Type 3
// response (NTProofStr = HMAC-MD5(NTOWFv2, serverChallenge ‖ blob)). Enough to prove a client really
// computed the response from the right password; no signing, sealing or MIC.
import { createHmac, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';

const md4 = createRequire(import.meta.url)('js-md4') as { arrayBuffer(data: Buffer): ArrayBuffer };
const SIGNATURE = Buffer.from('NTLMSSP\0', 'latin1');

export interface NtlmChallenge {
  readonly header: string;
  readonly serverChallenge: Buffer;
}

/** A Type 2 message offering NTLMv2 (with target info, as Windows sends it). */
export function createChallenge(domain = 'FAKEVM'): NtlmChallenge {
  const serverChallenge = randomBytes(8);
  const target = Buffer.from(domain, 'utf16le');
  // Target info: MsvAvNbDomainName, MsvAvNbComputerName, MsvAvEOL.
  const av = (type: number, value: Buffer): Buffer => {
    const head = Buffer.alloc(4);
    head.writeUInt16LE(type, 0);
    head.writeUInt16LE(value.length, 2);
    return Buffer.concat([head, value]);
  };
  const info = Buffer.concat([av(2, target), av(1, target), Buffer.alloc(4)]);
  const fixed = Buffer.alloc(48);
  SIGNATURE.copy(fixed, 0);
  fixed.writeUInt32LE(2, 8);
  fixed.writeUInt16LE(target.length, 12);
  fixed.writeUInt16LE(target.length, 14);
  fixed.writeUInt32LE(48, 16);
  // Flags: Unicode, NTLM, target info, extended session security, request target, 128, 56.
  fixed.writeUInt32LE(
    (0x00000001 |
      0x00000004 |
      0x00000200 |
      0x00800000 |
      0x00080000 |
      0x20000000 |
      0x80000000 |
      0x00010000) >>>
      0,
    20,
  );
  serverChallenge.copy(fixed, 24);
  fixed.writeUInt16LE(info.length, 40);
  fixed.writeUInt16LE(info.length, 42);
  fixed.writeUInt32LE(48 + target.length, 44);
  const message = Buffer.concat([fixed, target, info]);
  return { header: message.toString('base64'), serverChallenge };
}

export function isType1(base64: string): boolean {
  const message = Buffer.from(base64, 'base64');
  return message.subarray(0, 8).equals(SIGNATURE) && message.readUInt32LE(8) === 1;
}

/** Checks a Type 3 message against the expected user and password; returns the user name it carries. */
export function verifyType3(
  base64: string,
  challenge: NtlmChallenge,
  expected: { user: string; password: string },
): { ok: boolean; user: string } {
  const message = Buffer.from(base64, 'base64');
  if (!message.subarray(0, 8).equals(SIGNATURE) || message.readUInt32LE(8) !== 3)
    return { ok: false, user: '' };
  const field = (offset: number): Buffer => {
    const length = message.readUInt16LE(offset);
    const at = message.readUInt32LE(offset + 4);
    return message.subarray(at, at + length);
  };
  const ntResponse = field(20);
  const domain = field(28).toString('utf16le');
  const user = field(36).toString('utf16le');
  if (ntResponse.length < 24 || user.toLowerCase() !== expected.user.toLowerCase())
    return { ok: false, user };
  const ntHash = Buffer.from(md4.arrayBuffer(Buffer.from(expected.password, 'utf16le')));
  const ntowfv2 = createHmac('md5', ntHash)
    .update(Buffer.from(user.toUpperCase() + domain, 'utf16le'))
    .digest();
  const proof = ntResponse.subarray(0, 16);
  const blob = ntResponse.subarray(16);
  const computed = createHmac('md5', ntowfv2)
    .update(Buffer.concat([challenge.serverChallenge, blob]))
    .digest();
  return { ok: computed.equals(proof), user };
}
