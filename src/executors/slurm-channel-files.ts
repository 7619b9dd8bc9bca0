/**
 * The channel files of shim runs in Slurm jobs (slurm-run.ts): a job cannot reach the
 * orchestrator through a pipe, so the shim writes its messages to a file
 * (`--channel file:PATH`) under `slurm_logs/.channels/`, read here as it grows.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseShimMessage, ProtocolError, type ShimMessage } from '../context/protocol.js';
import type { DatabaseDir } from '../database-dir.js';

/** What a channel file holds so far: the messages of complete lines, or why it cannot be read. */
export function readChannelFile(file: string): { messages: ShimMessage[]; error: string | null } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { messages: [], error: null };
    throw err;
  }
  const messages: ShimMessage[] = [];
  // A line without its newline is still being written.
  const complete = text.slice(0, text.lastIndexOf('\n') + 1);
  for (const line of complete.split('\n')) {
    if (line.trim() === '') continue;
    try {
      messages.push(parseShimMessage(line));
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      return { messages, error: `Python shim protocol error: ${err.message}` };
    }
  }
  return { messages, error: null };
}

/** A fresh directory for one submission's channel files, removed once they are read. */
export function channelDir(dir: DatabaseDir): string {
  const channels = path.join(dir.slurmLogsDir, '.channels', randomBytes(6).toString('hex'));
  mkdirSync(channels, { recursive: true });
  return channels;
}
