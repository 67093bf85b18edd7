/** Reads the private key file named by --ssh-key-file (bounded, never blocking on a FIFO or device). */
import { readInputFile } from '../read-input-file.js';

/** Far above any real key (a 16384-bit RSA key in PEM is about 13 KB). */
const MAX_KEY_FILE_BYTES = 1024 * 1024;

export function readSshKeyFile(file: string): Buffer {
  return readInputFile(file, {
    label: `the SSH key file ${file}`,
    maxBytes: MAX_KEY_FILE_BYTES,
    code: 'usage',
    hint: 'check --ssh-key-file / ISOBUILD_SSH_KEY_FILE.',
  });
}
