// Global setup of the integration project: the tests run dist/, so build it first when the sources changed.
import { ensureDistFresh } from './dist-freshness.js';

export default async function setup(): Promise<void> {
  const started = performance.now();
  const done = await ensureDistFresh(process.cwd(), { log: (line) => console.log(line) });
  if (done === 'rebuilt') console.log(`dist/ rebuilt in ${Math.round(performance.now() - started)} ms`);
}
