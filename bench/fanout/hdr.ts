import hdr from 'hdr-histogram-js';

/** HDR histograms of microseconds: 3 significant digits, growing as needed. */
export type Histogram = ReturnType<typeof hdr.build>;

export const newHistogram = (): Histogram =>
  hdr.build({ numberOfSignificantValueDigits: 3, lowestDiscernibleValue: 1, autoResize: true });

export const encodeHistogram = (histogram: Histogram): string => hdr.encodeIntoCompressedBase64(histogram);

/** One histogram of everything in `encoded` (each a compressed base64 HDR histogram). */
export function mergeHistograms(encoded: readonly string[]): Histogram {
  const total = newHistogram();
  for (const text of encoded) {
    const part = hdr.decodeFromCompressedBase64(text);
    total.add(part);
  }
  return total;
}

export interface LatencyMs {
  readonly count: number;
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
}

/** Percentiles in milliseconds of a histogram of microseconds (NaN when empty). */
export function latencyMs(histogram: Histogram): LatencyMs {
  const count = histogram.totalCount;
  const at = (p: number) => (count === 0 ? Number.NaN : histogram.getValueAtPercentile(p) / 1000);
  return {
    count,
    p50: at(50),
    p99: at(99),
    p999: at(99.9),
    max: count === 0 ? Number.NaN : histogram.maxValue / 1000,
  };
}
