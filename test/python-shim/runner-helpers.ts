/**
 * Helpers for the shim's `describe` and `run` command tests: run them in the real interpreter
 * with a file channel and read their messages (HDF5 files and sample proposals:
 * ../helpers/python.ts).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import {
  parseShimMessage,
  type ContextMessage,
  type LoadErrorMessage,
  type ShimMessage,
  type VariableResultMessage,
} from '../../src/context/protocol.js';
import { FIXTURES_DIR, REPO_ROOT, TEST_PYTHON } from '../helpers/paths.js';

export const SHIM = path.join(REPO_ROOT, 'python-shim', 'damnit_shim.py');
export const SAMPLE_CONTEXT = path.join(FIXTURES_DIR, 'sample', 'context.py');

export const HEADER = 'import numpy as np\nfrom damnit_ctx import Variable, Cell, Skip\n\n';

export interface RunOutput {
  messages: ShimMessage[];
  results: Map<string, VariableResultMessage>;
  stdout: string;
  stderr: string;
  exitCode: number | undefined;
}

export interface RunOptions {
  proposal?: number;
  run?: number;
  runData?: 'raw' | 'proc' | 'all';
  proposalPath?: string;
  out?: string;
  mock?: boolean;
  extra?: string[];
}

/** The default output path of a run in `dir`, as the orchestrator names it. */
export function h5PathFor(dir: string, proposal = 1234, run = 1): string {
  return path.join(dir, 'extracted_data', `p${proposal}_r${run}.h5`);
}

/** Writes `source` as `dir/context.py` (creating dir) and returns its path. */
export function writeContext(dir: string, source: string): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'context.py');
  writeFileSync(file, source);
  return file;
}

export function shimArgs(contextFile: string, channel: string, opts: RunOptions): string[] {
  const dir = path.dirname(contextFile);
  const proposal = opts.proposal ?? 1234;
  const run = opts.run ?? 1;
  return [
    SHIM, '--channel', `file:${channel}`, 'run', contextFile,
    '--proposal', String(proposal), '--run', String(run),
    '--run-data', opts.runData ?? 'raw',
    '--proposal-path', opts.proposalPath ?? path.join(dir, 'no-proposal'),
    '--out', opts.out ?? h5PathFor(dir, proposal, run),
    ...(opts.mock === false ? [] : ['--mock']),
    ...(opts.extra ?? []),
  ];
}

export function readChannel(channel: string): ShimMessage[] {
  if (!existsSync(channel)) return [];
  return readFileSync(channel, 'utf8').split('\n').filter((l) => l !== '').map(parseShimMessage);
}

let runCounter = 0;

export interface DescribeOutput {
  messages: ShimMessage[];
  stdout: string;
  stderr: string;
  exitCode: number | undefined;
}

/** Runs `describe` on a context file and collects its messages. */
export async function describeShim(contextFile: string, python: string = TEST_PYTHON): Promise<DescribeOutput> {
  runCounter += 1;
  const dir = path.dirname(contextFile);
  const channel = path.join(dir, `channel-${process.pid}-${runCounter}.jsonl`);
  const result = await execa(python, [SHIM, '--channel', `file:${channel}`, 'describe', contextFile], {
    cwd: dir,
    reject: false,
  });
  return {
    messages: readChannel(channel),
    stdout: String(result.stdout),
    stderr: String(result.stderr),
    exitCode: result.exitCode,
  };
}

/** The context message of a describe that loaded the context. */
export function loaded(out: DescribeOutput): ContextMessage {
  const last = out.messages.at(-1);
  assert.equal(last?.kind, 'context', `expected a context message, got ${JSON.stringify(last)}\n${out.stderr}`);
  return last as ContextMessage;
}

/** The load_error message of a describe that could not load the context. */
export function loadFailed(out: DescribeOutput): LoadErrorMessage {
  const last = out.messages.at(-1);
  assert.equal(last?.kind, 'load_error', `expected a load_error message, got ${JSON.stringify(last)}`);
  assert.equal(out.exitCode, 0, 'describe exits 0 when it reported a load error');
  return last as LoadErrorMessage;
}

/** Runs `run` on a context file (mock run unless `mock: false`) and collects its messages. */
export async function runShim(contextFile: string, opts: RunOptions = {}): Promise<RunOutput> {
  runCounter += 1;
  const dir = path.dirname(contextFile);
  const channel = path.join(dir, `channel-${process.pid}-${runCounter}.jsonl`);
  const result = await execa(TEST_PYTHON, shimArgs(contextFile, channel, opts), { cwd: dir, reject: false });
  const messages = readChannel(channel);
  const results = new Map<string, VariableResultMessage>();
  for (const m of messages) if (m.kind === 'variable_result') results.set(m.name, m);
  return {
    messages,
    results,
    stdout: String(result.stdout),
    stderr: String(result.stderr),
    exitCode: result.exitCode,
  };
}

/** Runs and asserts the run finished: the messages end with run_finished, exit code 0. */
export async function runOk(contextFile: string, opts: RunOptions = {}): Promise<RunOutput> {
  const out = await runShim(contextFile, opts);
  const kinds = out.messages.map((m) => m.kind);
  assert.equal(kinds.at(-1), 'run_finished', `run did not finish: ${kinds.join(',')}\n${out.stderr}`);
  assert.equal(out.exitCode, 0, out.stderr);
  return out;
}

export function result(out: RunOutput, name: string): VariableResultMessage {
  const r = out.results.get(name);
  assert.ok(r, `no variable_result for ${name}; got ${[...out.results.keys()].join(', ')}`);
  return r;
}

/** Decodes a base64 SummaryValue of kind bytes. */
export function bytesOf(value: VariableResultMessage['value']): Buffer {
  assert.ok(value && value.t === 'bytes', `expected bytes, got ${JSON.stringify(value)}`);
  return Buffer.from(value.v, 'base64');
}

const PNG_COLOUR_TYPES: Record<number, string> = { 0: 'grey', 2: 'RGB', 3: 'palette', 4: 'grey+alpha', 6: 'RGBA' };

/** Width, height and colour type of PNG bytes, from the IHDR chunk. */
export function pngSize(png: Buffer): { width: number; height: number; colourType: string } {
  assert.equal(png.subarray(0, 8).toString('hex'), '89504e470d0a1a0a', 'not a PNG');
  const colourType = PNG_COLOUR_TYPES[png.readUInt8(25)] ?? `type ${png.readUInt8(25)}`;
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20), colourType };
}
