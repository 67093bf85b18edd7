/**
 * Structured JSON logs for container runs (ACI shows a container's stdout): one pino line per event,
 * with child loggers carrying the run id, the build phase, the step and, for relay connections, the
 * connection id and hop. Every serialised line passes the secret masker before it is written.
 * pino loads on demand, so text-mode runs do not pay for it.
 */
import type { Logger } from 'pino';
import type { BuildLog } from './build-log.js';

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

/** What a build tells the structured log besides its log lines. */
export interface BuildEvents {
  phase(subState: string): void;
  step(position: number, step: { readonly name: string; readonly type: string }): void;
  connection(entry: {
    connId: number;
    hop: string;
    bytesToUpstream: number;
    bytesFromUpstream: number;
    durationMs: number;
    end: string;
  }): void;
}

/**
 * Wires a build into the structured log: a child logger per run, per phase and per step, every line of
 * the build's logs (Packer's debug stream at debug level, the rest at info), one event per relay connection.
 */
export function structuredBuildEvents(
  logger: Logger | undefined,
  runId: string,
  logs: { readonly customization: BuildLog; readonly validation: BuildLog },
  initialPhase: string,
): BuildEvents {
  const runLog = logger?.child({ runId });
  let phaseLog = runLog?.child({ phase: initialPhase });
  let stepLog: Logger | undefined;
  for (const [name, log] of Object.entries(logs)) {
    log.tap = (source, line) => {
      const target = stepLog ?? phaseLog;
      if (source === 'PACKER ERR') target?.debug({ log: name, source }, line);
      else target?.info({ log: name, source }, line);
    };
  }
  return {
    phase: (subState) => {
      phaseLog = runLog?.child({ phase: subState });
      stepLog = undefined;
    },
    step: (position, step) => {
      stepLog = phaseLog?.child({ step: position, stepName: step.name, stepType: step.type });
    },
    connection: ({ connId, hop, ...fields }) =>
      runLog?.child({ connId, hop }).info(fields, 'relay connection closed'),
  };
}
