/**
 * Per-run process logs, `process_logs/r<R>-p<P>.out` in the database directory, where the
 * reference writes them and DAMNIT's GUI opens them (its "show processing log" for a run).
 * Every processing of a run appends to its file: a header saying who processed it where, the
 * context's own output as it comes (prints, tracebacks, "Computed X in 0.25 s" per variable),
 * and how it ended. Each line is one write(2) to a file opened for appending, so the file can
 * be read (tail -f, the GUI) while it grows, and processings of a run by several processes
 * never mix within a line.
 *
 * A log that cannot be written never stops processing: the caller is told once why (the
 * directory not writable, the disk full), and the run goes on without it.
 */
import { closeSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import type { DatabaseDir } from '../database-dir.js';
import { directoryModes, shareOwnedPath } from '../sharing.js';

export interface ProcessLogWhere {
  /** A Slurm job's id and cluster when the processing runs in one. */
  slurmJobId?: string;
  slurmCluster?: string | null;
}

/** The reference's header line, with a blank line before it to set processings apart. */
export function processingHeader(run: number, proposal: number, where: ProcessLogWhere = {}): string {
  const host = os.hostname();
  const cluster = where.slurmCluster ? `, cluster: ${where.slurmCluster}` : '';
  const node = where.slurmJobId ? `${host} (job id: ${where.slurmJobId}${cluster})` : `${host} (subprocess)`;
  return `\n----- Processing r${run} (p${proposal}) as ${os.userInfo().username} on ${node} -----\n`;
}

export class ProcessLog {
  private fd: number | null;

  private constructor(
    readonly file: string,
    fd: number,
    private readonly onProblem: (message: string) => void,
  ) {
    this.fd = fd;
  }

  /**
   * Opens the run's log for appending (creating process_logs/ and the file with the database
   * directory's sharing modes). Null, after telling `onProblem` why, when it cannot be.
   */
  static open(dir: DatabaseDir, run: number, proposal: number, onProblem: (message: string) => void): ProcessLog | null {
    const file = dir.processLogFile(run, proposal);
    try {
      const modes = directoryModes(dir.root);
      mkdirSync(dir.processLogsDir, { recursive: true, mode: 0o777 });
      shareOwnedPath(dir.processLogsDir, 'dir', modes);
      const fd = openSync(file, 'a', 0o666);
      shareOwnedPath(file, 'file', modes);
      return new ProcessLog(file, fd, onProblem);
    } catch (err) {
      onProblem(`cannot write the process log ${file} (${(err as Error).message}): processing goes on without it`);
      return null;
    }
  }

  /** Appends text as it is (lines end with '\n'); a failed write closes the log with one word about it. */
  write(text: string): void {
    if (this.fd === null) return;
    try {
      writeSync(this.fd, text);
    } catch (err) {
      this.onProblem(`cannot write the process log ${this.file} any more (${(err as Error).message}): processing goes on without it`);
      this.close();
    }
  }

  line(text: string): void {
    this.write(text.endsWith('\n') ? text : `${text}\n`);
  }

  close(): void {
    if (this.fd === null) return;
    const fd = this.fd;
    this.fd = null;
    try {
      closeSync(fd);
    } catch {
      // Already reported or nothing left to lose.
    }
  }
}

/**
 * Copies a Slurm job's output file into the process log once the job has ended (the job writes
 * its own file in slurm_logs/; the GUI looks here). A file that cannot be read is named instead.
 */
export function appendJobOutput(log: ProcessLog, jobId: string, logPath: string): void {
  let text: string;
  try {
    text = readFileSync(logPath, 'utf8');
  } catch (err) {
    log.line(`----- the output of Slurm job ${jobId} could not be read from ${logPath}: ${(err as Error).message}`);
    return;
  }
  log.line(`----- output of Slurm job ${jobId} (${logPath}):`);
  if (text !== '') log.line(text);
}
