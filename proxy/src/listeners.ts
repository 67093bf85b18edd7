/**
 * Binds all of isobuild-proxy's listeners or none: a proxy that serves SSH but not WinRM, or has no health
 * check, looks healthy to whoever started it and fails later. Every failure is named with its address, port
 * and what to do.
 */
import type { AddressInfo, Server } from 'node:net';
import { formatEndpoint } from './values.js';

export interface Listener {
  /** `ssh`, `winrm` or `health`, as messages name it. */
  readonly name: string;
  /** The option that sets its port, for the advice. */
  readonly option: string;
  readonly port: number;
  readonly server: Server;
}

/** The proxy could not listen; the message lists every listener that failed. */
export class ListenError extends Error {}

/** Binds every listener on `address` and returns their actual ports, or closes them all and throws ListenError. */
export async function listenAll(
  address: string,
  listeners: readonly Listener[],
): Promise<Record<string, number>> {
  const results = await Promise.allSettled(listeners.map((listener) => listen(listener, address)));
  const failures = results.flatMap((result, i) =>
    result.status === 'rejected'
      ? [explain(listeners[i]!, address, result.reason as NodeJS.ErrnoException)]
      : [],
  );
  if (failures.length > 0) {
    await Promise.all(listeners.map((listener) => close(listener.server)));
    throw new ListenError(failures.join('\n'));
  }
  return Object.fromEntries(listeners.map((l) => [l.name, (l.server.address() as AddressInfo).port]));
}

function listen(listener: Listener, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    listener.server.once('error', reject);
    listener.server.listen(listener.port, address, () => {
      listener.server.off('error', reject);
      resolve();
    });
  });
}

/** Closes a server that may or may not be listening; the servers refuse connections until all listen. */
function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
  });
}

function explain(listener: Listener, address: string, error: NodeJS.ErrnoException): string {
  const where = `cannot listen for ${listener.name} on ${formatEndpoint(address, listener.port)}`;
  const other = `choose another port with --${listener.option}`;
  switch (error.code) {
    case 'EADDRINUSE':
      return `${where}: the port is already in use by another process; stop that process or ${other}.`;
    case 'EACCES':
      return `${where}: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE); grant that or ${other}.`;
    case 'EADDRNOTAVAIL':
      return `${where}: ${address} is not an address of this machine; give one it has with --listen (\`ip address\` lists them), or 0.0.0.0 for all.`;
    case 'EAFNOSUPPORT':
    case 'EINVAL':
      return `${where}: this machine cannot listen on that address family (${error.code}); give an IPv4 address such as 0.0.0.0 with --listen.`;
    default:
      return `${where}: ${error.code ?? error.message}; check --listen and --${listener.option}.`;
  }
}
