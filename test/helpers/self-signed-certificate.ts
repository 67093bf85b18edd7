// A throwaway key and self-signed certificate (openssl), for the HTTPS servers tests start: the fake Windows VM,
// test HTTP servers and Azurite over TLS.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface CertificateOptions {
  /** The subject's common name (default 127.0.0.1). */
  readonly commonName?: string;
  /** subjectAltName entries such as `IP:127.0.0.1` or `DNS:localhost` (default `IP:127.0.0.1`). */
  readonly altNames?: readonly string[];
}

export interface CertificateFiles {
  readonly keyFile: string;
  readonly certFile: string;
  /** PEM texts of the two files. */
  readonly key: string;
  readonly cert: string;
}

/** Writes key.pem and cert.pem (RSA 2048, valid 2 days) into `dir`. */
export function writeSelfSignedCertificate(dir: string, options: CertificateOptions = {}): CertificateFiles {
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  const altNames = options.altNames ?? ['IP:127.0.0.1'];
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '2',
      '-subj',
      `/CN=${options.commonName ?? '127.0.0.1'}`,
      '-addext',
      `subjectAltName=${altNames.join(',')}`,
    ],
    { stdio: 'ignore' },
  );
  return { keyFile, certFile, key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8') };
}

/** A key and certificate in memory only (their files are removed at once). */
export function selfSignedCertificate(options: CertificateOptions = {}): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), 'isobuild-test-cert-'));
  try {
    const { key, cert } = writeSelfSignedCertificate(dir, options);
    return { key, cert };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
