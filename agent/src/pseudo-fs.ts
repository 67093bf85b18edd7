/**
 * Kernel pseudo-filesystems (/proc, /sys, …): no place for a work directory, and never an artifact
 * (/proc/self/environ is a "regular file" holding the agent's secrets).
 */
import { statfs } from 'node:fs/promises';
import { dirname } from 'node:path';

/** statfs(2) magic numbers. */
const PSEUDO_FILESYSTEMS: Readonly<Record<number, string>> = {
  0x9fa0: 'proc',
  0x62656572: 'sysfs',
  0x27e0eb: 'cgroup',
  0x63677270: 'cgroup2',
  0x64626720: 'debugfs',
  0x74726163: 'tracefs',
  0x73636673: 'securityfs',
  0xcafe4a11: 'bpf',
  0x1cd1: 'devpts',
};

/** The pseudo-filesystem the path (or its nearest existing ancestor) is on, if any. */
export async function pseudoFilesystem(path: string): Promise<string | undefined> {
  for (let current = path; ; current = dirname(current)) {
    const info = await statfs(current).catch(() => undefined);
    if (info) return PSEUDO_FILESYSTEMS[info.type];
    if (dirname(current) === current) return undefined;
  }
}
