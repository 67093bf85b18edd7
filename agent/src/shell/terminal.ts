/**
 * The user's terminal, for a session with a PTY: its type and size, its resizes (Node's SIGWINCH handling
 * on the TTY output), and raw mode, so that Ctrl-C, Ctrl-Z and the arrow keys travel to the VM as bytes.
 */
import type { ReadStream, WriteStream } from 'node:tty';

export interface WindowSize {
  readonly rows: number;
  readonly cols: number;
}

export interface Terminal {
  readonly input: ReadStream;
  /** TERM, for the remote PTY. */
  readonly term: string;
  size(): WindowSize;
  /** Calls `listener` after each resize; returns how to stop. */
  onResize(listener: () => void): () => void;
}

/** What a terminal shows when nothing says otherwise. */
const DEFAULT_SIZE: WindowSize = { rows: 24, cols: 80 };

/** The terminal of `input`, sized by the first of `outputs` that is a TTY (stdout, else stderr). */
export function terminalOf(
  input: ReadStream,
  outputs: readonly NodeJS.WriteStream[],
  term: string,
): Terminal {
  const screen = outputs.find((output): output is WriteStream & NodeJS.WriteStream => output.isTTY === true);
  return {
    input,
    term,
    size: () =>
      screen && screen.rows > 0 && screen.columns > 0
        ? { rows: screen.rows, cols: screen.columns }
        : DEFAULT_SIZE,
    onResize: (listener) => {
      screen?.on('resize', listener);
      return () => screen?.off('resize', listener);
    },
  };
}

/** Puts the terminal in raw mode; the returned function restores the mode it had. */
export function enterRawMode(terminal: Terminal): () => void {
  const { input } = terminal;
  const wasRaw = input.isRaw;
  input.setRawMode(true);
  return () => {
    input.setRawMode(wasRaw);
  };
}
