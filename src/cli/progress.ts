/**
 * Signs of life on a terminal: `withStatus` for one slow step, `ProgressReporter` for many runs.
 *
 * Progress of a command that processes many runs. In a terminal: one status line redrawn in
 * place (a bar, runs done and failed, the current runs). Otherwise: one plain line per run, which
 * is what a log file or CI wants.
 */
import { styleText } from 'node:util';

export interface RunReport {
  label: string;
  ok: boolean;
  /** e.g. `11 variables, 1 error` or why the run failed. */
  detail: string;
  seconds: number;
}

const BAR_WIDTH = 24;

function interactive(out: NodeJS.WriteStream): boolean {
  return Boolean(out.isTTY) && process.env.TERM !== 'dumb';
}

/**
 * Runs `work` with `text` and the seconds spent shown on one line of a terminal, which is cleared
 * when it ends. Elsewhere (a pipe, a log file, CI) nothing is shown.
 */
export async function withStatus<T>(text: string, work: () => Promise<T>, out: NodeJS.WriteStream = process.stderr): Promise<T> {
  if (!interactive(out)) return work();
  const started = performance.now();
  const draw = (): void => {
    out.write(`\r\x1b[2K${text} ${((performance.now() - started) / 1000).toFixed(1)} s`);
  };
  draw();
  const timer = setInterval(draw, 200);
  try {
    return await work();
  } finally {
    clearInterval(timer);
    out.write('\r\x1b[2K');
  }
}

export class ProgressReporter {
  private done = 0;
  private failed = 0;
  private readonly current = new Set<string>();
  private readonly interactive: boolean;

  constructor(
    private readonly total: number,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {
    this.interactive = interactive(out);
  }

  started(label: string): void {
    this.current.add(label);
    this.redraw();
  }

  /** A message about one run that must stay on screen (a warning, the user's output). */
  note(text: string): void {
    this.clearLine();
    this.out.write(`${text}\n`);
    this.redraw();
  }

  finished(report: RunReport): void {
    this.current.delete(report.label);
    this.done += 1;
    if (!report.ok) this.failed += 1;
    this.clearLine();
    const status = report.ok ? 'done' : this.style('red', 'FAILED');
    this.out.write(`${report.label}: ${status} in ${report.seconds.toFixed(1)} s: ${report.detail}\n`);
    this.redraw();
  }

  close(): void {
    this.clearLine();
  }

  private style(color: 'red' | 'green', text: string): string {
    return this.interactive ? styleText(color, text, { stream: this.out }) : text;
  }

  private clearLine(): void {
    if (this.interactive) this.out.write('\r\x1b[2K');
  }

  private redraw(): void {
    if (!this.interactive) return;
    const filled = this.total === 0 ? BAR_WIDTH : Math.round((this.done / this.total) * BAR_WIDTH);
    const bar = `${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}`;
    const failed = this.failed > 0 ? `, ${this.style('red', `${this.failed} failed`)}` : '';
    // A few current runs at most, so that the line never wraps and redraws in place.
    const shown = [...this.current].slice(0, 3).join(', ');
    const more = this.current.size > 3 ? ', ...' : '';
    const now = this.current.size > 0 ? `  now: ${shown}${more}` : '';
    this.out.write(`\r\x1b[2K[${bar}] ${this.done}/${this.total} runs${failed}${now}`);
  }
}
