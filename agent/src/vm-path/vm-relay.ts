/** The local relay in front of the build VM: Packer and the probes connect to it, it dials the path's hop. */
import { startRelay, type Relay, type RelayConnectionLog } from '../relay/relay.js';
import type { VmPath } from './vm-path.js';

export interface VmRelayOptions {
  /** How long the relay waits for each upstream connect (to the VM or the proxy), in ms. */
  readonly connectTimeoutMs: number;
  /** Called once per closed connection, with its bytes, duration and how it ended. */
  readonly onConnection?: (entry: RelayConnectionLog) => void;
}

/** Starts a relay on 127.0.0.1 (an ephemeral port) whose upstream is the path's hop. Close it when done. */
export function openVmRelay(path: VmPath, options: VmRelayOptions): Promise<Relay> {
  return startRelay({
    upstream: path.hop,
    connectTimeoutMs: options.connectTimeoutMs,
    ...(options.onConnection ? { onConnection: options.onConnection } : {}),
  });
}
