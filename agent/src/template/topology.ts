/** Explains the network path that vmProfile.vnetConfig implies (aib-reference §4), for summaries. */
import type { ImageTemplate } from './model.js';

export const COMMUNICATOR_PORT = { linux: 22, windows: 5986 } as const;
export const PROXY_PORT = { linux: 60001, windows: 60000 } as const;

export function describeTopology(t: Pick<ImageTemplate, 'topology' | 'os' | 'vnet'>): string {
  const port = COMMUNICATOR_PORT[t.os];
  switch (t.topology) {
    case 'direct':
      return `direct (no vnetConfig subnet): agent -> build VM :${port}`;
    case 'proxy':
      return `via proxy VM (subnetId only; proxy ${t.vnet.proxyVmSize ?? ''}): agent -> proxy :${PROXY_PORT[t.os]} -> build VM :${port}`;
    case 'aci-subnet':
      return `direct from the ACI subnet (subnetId + containerInstanceSubnetId): agent -> build VM :${port}`;
  }
}
