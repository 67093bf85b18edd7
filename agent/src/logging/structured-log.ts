/**
 * Structured JSON logs for container runs (ACI shows a container's stdout): one pino line per event,
 * with child loggers carrying the run id, the build phase, the step and, for relay connections, the
 * connection id and hop. Every serialised line passes the secret masker before it is written.
 * pino loads on demand, so text-mode runs do not pay for it.
 */
import type { Logger } from 'pino';

export type { Logger };

export async function createStructuredLogger(mask: (text: string) => string): Promise<Logger> {
  const { pino } = await import('pino');
  return pino(
    {
      base: { name: 'isobuild' },
      level: 'debug',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      hooks: { streamWrite: (line) => mask(line) },
    },
    pino.destination({ dest: 1, sync: true }),
  );
}
