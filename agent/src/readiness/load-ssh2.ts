/** ssh2 loads on first use (~40 ms), so a build can overlap it with waiting for `packer version`. */
import type * as Ssh2 from 'ssh2';

let loading: Promise<typeof Ssh2> | undefined;

export function loadSsh2(): Promise<typeof Ssh2> {
  loading ??= import('ssh2');
  return loading;
}
