import { closeSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs';

/**
 * The process's descriptors as the kernel sees them, through /proc (Linux). Elsewhere these
 * readers answer undefined and the accept guard is off.
 */

const LIMITS_FILE = '/proc/self/limits';
const SOMAXCONN_FILE = '/proc/sys/net/core/somaxconn';
const FD_DIR = '/proc/self/fd';

/** The soft open-files limit (RLIMIT_NOFILE) from /proc/self/limits; undefined if unknown or unlimited. */
export function readOpenFilesLimit(
  read: () => string = () => readFileSync(LIMITS_FILE, 'utf8'),
): number | undefined {
  let text: string;
  try {
    text = read();
  } catch {
    return undefined;
  }
  const match = /^Max open files\s+(\d+|unlimited)\s/m.exec(text);
  if (!match || match[1] === 'unlimited') return undefined;
  return Number(match[1]);
}

/** net.core.somaxconn of the process's network namespace (the cap on a listen backlog); undefined if unknown. */
export function readSomaxconn(
  read: () => string = () => readFileSync(SOMAXCONN_FILE, 'utf8'),
): number | undefined {
  try {
    const value = Number(read().trim());
    return Number.isSafeInteger(value) && value > 0 ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A counter of the process's open descriptors, or undefined where /proc/self/fd does not exist.
 * Since Linux 6.2 stat() of the directory reports the count as its size, from the descriptor
 * bitmap, in one system call whatever the count and without opening a descriptor (which an
 * exhausted process could not); older kernels report 0 and the directory is listed instead, at a
 * cost that grows with the count (the accept guard spaces its readings by it).
 */
export function openDescriptorCounter(): (() => number) | undefined {
  let size: number;
  try {
    size = statSync(FD_DIR).size;
  } catch {
    return undefined;
  }
  if (size > 0) return () => statSync(FD_DIR).size;
  return () => {
    try {
      // Listing opens the directory itself: one entry too many.
      return readdirSync(FD_DIR).length - 1;
    } catch {
      // No descriptor left to list with (EMFILE): as full as it gets.
      return Number.POSITIVE_INFINITY;
    }
  };
}

/**
 * Descriptors held open on /dev/null while the gateway accepts, and given back the moment the
 * accept guard pauses: if a burst of accepts exhausts the limit before the guard sees it, these are
 * what the admin listener, Redis and the logs get to work with.
 */
export class DescriptorReserve {
  private held: number[] = [];

  constructor(private readonly size: number) {}

  get count(): number {
    return this.held.length;
  }

  /** Opens what is missing; stops quietly at the first failure (EMFILE): the next call tries again. */
  fill(): void {
    try {
      while (this.held.length < this.size) this.held.push(openSync('/dev/null', 'r'));
    } catch {
      // Out of descriptors: keep what we have.
    }
  }

  release(): void {
    for (const fd of this.held) closeSync(fd);
    this.held = [];
  }
}
