/**
 * The soak's verdict: growth of a resource over the samples after the warm-up (a least-squares
 * slope per hour, and the mean of the first and the last tenth of those samples), and the
 * PASS / FAIL lines. Growth is judged only over a long enough span: a minute says nothing about a
 * leak, so a short run reports it and does not fail on it.
 */
import type { Timed } from './gateway-process.js';

/** Below this much post-warm-up time, growth is reported, not judged. */
export const MIN_JUDGED_SPAN_MS = 10 * 60_000;

export interface Growth {
  readonly samples: number;
  readonly spanMs: number;
  /** Least-squares slope, in the value's unit per hour. */
  readonly slopePerHour: number;
  readonly firstWindowMean: number;
  readonly lastWindowMean: number;
}

export function growthOf(series: ReadonlyArray<Timed<number>>): Growth {
  const points = series.filter((p) => Number.isFinite(p.value));
  const n = points.length;
  const spanMs = n > 1 ? points[n - 1]!.atMs - points[0]!.atMs : 0;
  const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const window = Math.max(1, Math.round(n / 10));
  if (n < 2) {
    const only = points[0]?.value ?? Number.NaN;
    return { samples: n, spanMs, slopePerHour: Number.NaN, firstWindowMean: only, lastWindowMean: only };
  }
  const hours = points.map((p) => p.atMs / 3_600_000);
  const values = points.map((p) => p.value);
  const mx = mean(hours);
  const my = mean(values);
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (hours[i]! - mx) * (values[i]! - my);
    sxx += (hours[i]! - mx) ** 2;
  }
  return {
    samples: n,
    spanMs,
    slopePerHour: sxx === 0 ? Number.NaN : sxy / sxx,
    firstWindowMean: mean(values.slice(0, window)),
    lastWindowMean: mean(values.slice(-window)),
  };
}

/**
 * PASS or FAIL; WARN: a criterion that is reported, not fatal, did not hold; REPORT: growth over
 * too short a span to judge.
 */
export type Outcome = 'PASS' | 'FAIL' | 'WARN' | 'REPORT';

export interface Criterion {
  readonly name: string;
  readonly outcome: Outcome;
  /** A FAIL of a fatal criterion makes the exit code non-zero. */
  readonly fatal: boolean;
  readonly figures: string;
}

/**
 * Growth that fails: a slope above `limitPerHour` and a last window above the first (noise makes
 * one of the two positive now and then; a leak makes both). Judged only over MIN_JUDGED_SPAN_MS.
 */
export function growthCriterion(
  name: string,
  growth: Growth,
  limitPerHour: number,
  unit: string,
  scale = 1,
): Criterion {
  const f = (v: number) => (v / scale).toFixed(1);
  const figures =
    `slope ${f(growth.slopePerHour)} ${unit}/hour (limit ${f(limitPerHour)}), first window ${f(growth.firstWindowMean)} ${unit}, ` +
    `last window ${f(growth.lastWindowMean)} ${unit}, ${growth.samples} samples over ${(growth.spanMs / 60_000).toFixed(1)} min`;
  if (growth.spanMs < MIN_JUDGED_SPAN_MS)
    return { name, outcome: 'REPORT', fatal: false, figures: `${figures} (too short to judge)` };
  const grows = growth.slopePerHour > limitPerHour && growth.lastWindowMean > growth.firstWindowMean;
  return { name, outcome: grows ? 'FAIL' : 'PASS', fatal: true, figures };
}

export function check(name: string, pass: boolean, figures: string, fatal = true): Criterion {
  return { name, outcome: pass ? 'PASS' : fatal ? 'FAIL' : 'WARN', fatal, figures };
}
