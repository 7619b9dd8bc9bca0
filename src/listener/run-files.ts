/**
 * When are a run's files complete? The file-system source asks this of `raw/r0042/` and
 * `proc/r0042/`; the rule (docs/operations.md, "Watching the file system"):
 *
 * 1. The directory holds at least one HDF5 file (`*.h5`).
 * 2. No copy is under way: no hidden file and no file whose name continues after `.h5`
 *    (`RAW-...h5.part`, rsync's `.RAW-...h5.AbC123`).
 * 3. Every `*.h5` file is whole: it starts with an HDF5 superblock, is at least as long as the
 *    end-of-file address that superblock records (a file still being copied is shorter), and a
 *    version 3 superblock does not say it is open for writing.
 * 4. Nothing in the directory (names, sizes, modification times) changed for the settle time.
 *
 * Checks 2 and 3 catch copies that stall for longer than the settle time; check 4 catches
 * writers that extend files in place.
 */
import { open, readdir, stat } from 'node:fs/promises';
import path from 'node:path';

const HDF5_SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);
/** The superblock is at 0 or, after a user block, at 512, 1024, 2048, ...: look this far. */
const MAX_SUPERBLOCK_OFFSET = 1 << 20;
const SUPERBLOCK_BYTES = 64;
/** Version 3 superblock flags: opened for writing, opened for SWMR writing. */
const FLAG_WRITE_ACCESS = 0x1;
const FLAG_SWMR_WRITE = 0x4;

export type FileCheck = { whole: true } | { whole: false; reason: string };

function readAddress(buf: Buffer, at: number, size: number): bigint | null {
  if (at + size > buf.length) return null;
  let value = 0n;
  let allOnes = true;
  for (let i = size - 1; i >= 0; i--) {
    const byte = buf[at + i] as number;
    if (byte !== 0xff) allOnes = false;
    value = (value << 8n) | BigInt(byte);
  }
  // All bits set is HDF5's "undefined address".
  return allOnes ? null : value;
}

/** Whether an HDF5 file is whole, from its superblock and its length (rule 3 above). */
export async function checkHdf5File(file: string): Promise<FileCheck> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    const buf = Buffer.alloc(SUPERBLOCK_BYTES);
    for (let offset = 0; offset < size && offset <= MAX_SUPERBLOCK_OFFSET; offset = offset === 0 ? 512 : offset * 2) {
      const { bytesRead } = await handle.read(buf, 0, SUPERBLOCK_BYTES, offset);
      if (bytesRead < HDF5_SIGNATURE.length || !buf.subarray(0, HDF5_SIGNATURE.length).equals(HDF5_SIGNATURE)) continue;
      const version = buf[8] as number;
      let offsetSize: number;
      let addressesAt: number;
      let writing = false;
      if (version === 0 || version === 1) {
        offsetSize = buf[13] as number;
        addressesAt = version === 0 ? 24 : 28;
      } else if (version === 2 || version === 3) {
        offsetSize = buf[9] as number;
        addressesAt = 12;
        writing = version === 3 && ((buf[11] as number) & (FLAG_WRITE_ACCESS | FLAG_SWMR_WRITE)) !== 0;
      } else {
        return { whole: false, reason: `unknown HDF5 superblock version ${version}` };
      }
      if (![2, 4, 8].includes(offsetSize)) return { whole: false, reason: 'superblock not written yet' };
      const base = readAddress(buf, addressesAt, offsetSize);
      const eof = readAddress(buf, addressesAt + 2 * offsetSize, offsetSize);
      if (base === null || eof === null) return { whole: false, reason: 'superblock not written yet' };
      if (writing) return { whole: false, reason: 'open for writing' };
      if (BigInt(size) < base + eof) return { whole: false, reason: `${size} of ${base + eof} bytes present` };
      return { whole: true };
    }
    return { whole: false, reason: size === 0 ? 'empty' : 'no HDF5 superblock' };
  } finally {
    await handle.close();
  }
}

export interface RunDirSnapshot {
  /** Names, sizes and modification times of the directory's files: equal snapshots, no change. */
  signature: string;
  /** Why the files are not complete yet (rules 1 to 3), or null when they may be. */
  incomplete: string | null;
}

/** One look at a run directory; `null` when it does not exist (any more). */
export async function snapshotRunDir(dir: string): Promise<RunDirSnapshot | null> {
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
    throw err;
  }
  const parts: string[] = [];
  let incomplete: string | null = null;
  let hdf5Files = 0;
  for (const name of names) {
    const file = path.join(dir, name);
    let info;
    try {
      info = await stat(file);
    } catch {
      incomplete ??= `${name} vanished while looking`;
      continue;
    }
    parts.push(`${name}\t${info.size}\t${info.mtimeMs}`);
    if (!info.isFile()) continue;
    if (name.startsWith('.') || /\.h5./i.test(name)) {
      incomplete ??= `${name} is being copied`;
    } else if (name.toLowerCase().endsWith('.h5')) {
      hdf5Files += 1;
      if (incomplete === null) {
        const check = await checkHdf5File(file).catch((err: Error): FileCheck => ({ whole: false, reason: err.message }));
        if (!check.whole) incomplete = `${name}: ${check.reason}`;
      }
    }
  }
  if (hdf5Files === 0) incomplete ??= 'no HDF5 files yet';
  return { signature: parts.join('\n'), incomplete };
}
