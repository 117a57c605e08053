/**
 * Upstream incarnations (docs/ingest.md): each run of an upstream writer stamps its snapshots and
 * events with an epoch, 21 digits: its start time in ms (13 digits) then 8 random digits. Equal
 * length digit strings order as numbers, so every reader (and Redis's Lua, for the snapshot key)
 * orders any two epochs the same way: a later start wins, a tie is broken by the random part.
 */

export const EPOCH_PATTERN = /^\d{21}$/;

export function newEpoch(nowMs: number, random: () => number): string {
  const suffix = Math.floor(random() * 1e8);
  return `${String(nowMs).padStart(13, '0')}${String(suffix).padStart(8, '0')}`;
}

/**
 * Negative when `a` is an older incarnation than `b`, 0 when the same, positive when newer. An
 * absent epoch (a writer of the contract before epochs) is older than any epoch.
 */
export function compareEpochs(a: string | undefined, b: string | undefined): number {
  if (a === b) return 0;
  if (a === undefined) return -1;
  if (b === undefined) return 1;
  return a < b ? -1 : 1;
}
