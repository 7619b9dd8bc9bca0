/**
 * Runs a context for one run in a pseudo-terminal, for `reprocess --watch`: the user's own
 * output (progress bars, colours, anything that checks isatty) reaches the terminal live, as
 * with the reference's --watch. One fresh `damnit_shim.py run` per run, its protocol messages
 * going to a channel file (a pty has no room for a second stream), read once the run has ended.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pty from 'node-pty';
import { parseShimMessage, ProtocolError, type ShimMessage } from '../context/protocol.js';
import {
  describeExit,
  KILL_GRACE_MS,
  SHIM_SCRIPT,
  signalProcessGroup,
  trackProcessGroup,
} from '../context/shim-process.js';
import { outcomeFromMessages, type RunOutcome, type RunRequest } from '../runs/run-request.js';
import { makeTempDir, removeTempDir } from '../temp-dirs.js';
import type { OutputSink, RunEnvironment, RunExecutor } from './executor.js';
import { runnerArgs, stoppedBecause, timeLimitReason } from './local.js';
import { keepWhatFinished, RunProgress } from './salvage.js';

/** How much of the terminal output to keep for a failed run's detail. */
const OUTPUT_TAIL_CHARS = 4_000;

export interface PtyExecutorOptions {
  /** Where the terminal output goes, as it comes (escape sequences included). */
  write: (data: string) => void;
  /** Terminal size; default 80x24. */
  columns?: number;
  rows?: number;
}

/** Text without terminal escape sequences and carriage-return redraws, for messages. */
function plainText(data: string): string {
  return data
    .replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, '')
    .replace(/\x1b\][^\x07]*\x07/g, '')
    .split('\n')
    .map((line) => line.split('\r').filter((part) => part !== '').at(-1) ?? '')
    .join('\n');
}

export class PtyExecutor implements RunExecutor {
  private readonly channelDir = makeTempDir('damnit-watch-');
  private count = 0;
  private terminal: pty.IPty | undefined;

  constructor(
    private readonly env: RunEnvironment,
    private readonly opts: PtyExecutorOptions,
  ) {}

  /** Follows the user's terminal when it changes size. */
  resize(columns: number, rows: number): void {
    this.terminal?.resize(columns, rows);
  }

  /** `onOutput` is not called: the output goes to the terminal (`write`). */
  async execute(req: RunRequest, _onOutput?: OutputSink): Promise<RunOutcome> {
    this.count += 1;
    const channel = path.join(this.channelDir, `run-${this.count}.jsonl`);
    const terminal = pty.spawn(
      this.env.python,
      [SHIM_SCRIPT, '--channel', `file:${channel}`, 'run', ...runnerArgs(req, this.env)],
      {
        name: process.env.TERM && process.env.TERM !== 'dumb' ? process.env.TERM : 'xterm-256color',
        cols: this.opts.columns ?? 80,
        rows: this.opts.rows ?? 24,
        cwd: this.env.dir.root,
        env: { ...process.env, PYTHONUNBUFFERED: '1' },
      },
    );
    this.terminal = terminal;
    // The pty makes the shim a session (and process group) leader: a time limit stops its group.
    const untrack = trackProcessGroup(terminal.pid);
    let tail = '';
    let timedOut = false;
    const timers: NodeJS.Timeout[] = [];
    if (this.env.timeoutMs > 0 && Number.isFinite(this.env.timeoutMs)) {
      timers.push(
        setTimeout(() => {
          timedOut = true;
          signalProcessGroup(terminal.pid, 'SIGTERM');
          timers.push(setTimeout(() => signalProcessGroup(terminal.pid, 'SIGKILL'), KILL_GRACE_MS));
        }, this.env.timeoutMs),
      );
    }
    terminal.onData((data) => {
      this.opts.write(data);
      tail = (tail + data).slice(-OUTPUT_TAIL_CHARS);
    });
    const exit = await new Promise<{ exitCode: number; signal?: number }>((resolve) => terminal.onExit(resolve));
    for (const timer of timers) clearTimeout(timer);
    // What the context started in the shim's group ends with the run.
    signalProcessGroup(terminal.pid, 'SIGKILL');
    untrack();
    this.terminal = undefined;

    const output = plainText(tail).trimEnd();
    const detail = output || undefined;
    let messages: ShimMessage[];
    try {
      messages = this.readChannel(channel);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      return { ok: false, reason: `Python shim protocol error: ${err.message}`, detail };
    }
    const outcome = outcomeFromMessages(messages);
    if (outcome?.ok) return outcome;
    const progress = new RunProgress();
    for (const message of messages) progress.onMessage(message);
    if (outcome) return keepWhatFinished(this.env, req, progress, outcome, outcome.reason, terminal.pid);
    if (timedOut) return keepWhatFinished(this.env, req, progress, { reason: timeLimitReason(this.env), detail }, timeLimitReason(this.env), terminal.pid);
    const signalName = exit.signal
      ? ((Object.entries(os.constants.signals).find(([, n]) => n === exit.signal)?.[0] ?? null) as NodeJS.Signals | null)
      : null;
    const how = describeExit({ code: signalName ? null : exit.exitCode, signal: signalName, timedOut: false }, 0);
    const last = output.split('\n').filter((line) => line.trim() !== '').at(-1);
    const reason = `the Python shim (run) ${how} before it reported a result${last ? ` (last output: ${last.trim().slice(0, 300)})` : ''}`;
    return keepWhatFinished(this.env, req, progress, { reason, detail }, stoppedBecause(`its process ${how}`), terminal.pid);
  }

  async close(): Promise<void> {
    removeTempDir(this.channelDir);
  }

  private readChannel(channel: string): ShimMessage[] {
    let text: string;
    try {
      text = readFileSync(channel, 'utf8');
    } catch {
      return []; // the shim never got as far as its hello
    }
    return text.split('\n').filter((line) => line.trim() !== '').map(parseShimMessage);
  }
}
