import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CONFIG_VARIABLES } from '../../src/config/config.js';
import { CHART, ROOT } from '../support/k8s-tools.js';
import { type GatewayProcess, spawnGateway } from '../support/process.js';
import { exportedNames, metricNames } from '../support/promql.js';

/**
 * Every metric the alert rules, the dashboard and docs/runbook.md name is one a running gateway
 * (the built program, worker threads on) serves on /metrics, and every variable the runbook names
 * is one the configuration schema has.
 */

/** Series Prometheus itself makes for each target. */
const PROMETHEUS_SERIES = new Set(['up']);

const ruleExprs = (
  parse(readFileSync(join(CHART, 'files', 'alerts.yaml'), 'utf8')) as {
    groups: Array<{ rules: Array<{ expr: string }> }>;
  }
).groups.flatMap((g) => g.rules.map((r) => r.expr));
const dashboardExprs = (
  JSON.parse(readFileSync(join(CHART, 'files', 'dashboard.json'), 'utf8')) as {
    panels: Array<{ targets: Array<{ expr: string }> }>;
  }
).panels.flatMap((p) => p.targets.map((t) => t.expr));
const runbook = readFileSync(join(ROOT, 'docs', 'runbook.md'), 'utf8');

let gateway: GatewayProcess;
let exported: Set<string>;
beforeAll(async () => {
  gateway = await spawnGateway({ WS_WORKER_THREADS: '2' });
  const response = await fetch(`http://127.0.0.1:${gateway.port}/metrics`);
  exported = exportedNames(await response.text());
});
afterAll(async () => {
  gateway.child.kill('SIGTERM');
  await gateway.exited();
});

function unknown(names: Iterable<string>): string[] {
  return [...names].filter((n) => !exported.has(n) && !PROMETHEUS_SERIES.has(n));
}

describe('metric names', () => {
  it('the gateway exports the histogram and process metrics the queries rely on', () => {
    expect(exported).toContain('ws_feed_to_send_latency_seconds_bucket');
    expect(exported).toContain('nodejs_eventloop_lag_p99_seconds');
  });

  it('every metric in the alert rules is exported', () => {
    const names = ruleExprs.flatMap(metricNames);
    expect(names).toContain('ws_active_connections');
    expect(unknown(names)).toEqual([]);
  });

  it('every metric in the dashboard is exported', () => {
    const names = dashboardExprs.flatMap(metricNames);
    expect(names).toContain('ws_feed_to_send_latency_seconds_bucket');
    expect(unknown(names)).toEqual([]);
  });

  it('every metric docs/runbook.md names is exported', () => {
    // `grep ws_active` filters by a prefix: it must match exported names rather than be one.
    const prefixes = [...runbook.matchAll(/grep (ws_[a-z0-9_]+)/g)].map((m) => m[1]!);
    for (const prefix of prefixes)
      expect(
        [...exported].some((n) => n.startsWith(prefix)),
        prefix,
      ).toBe(true);
    const names = new Set(runbook.match(/(?<!grep )\b(?:ws|nodejs|process)_[a-z0-9_]+\b/g) ?? []);
    expect(names).toContain('ws_message_queue_size');
    expect(unknown(names)).toEqual([]);
  });
});

describe('docs/runbook.md', () => {
  it('names only environment variables the configuration schema has', () => {
    const names = new Set(runbook.match(/\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b/g) ?? []);
    expect(names).toContain('WS_WORKER_THREADS');
    expect([...names].filter((n) => !(n in CONFIG_VARIABLES))).toEqual([]);
  });

  it('has a section for every alert, where its runbook_url points', () => {
    const rules = (
      parse(readFileSync(join(CHART, 'files', 'alerts.yaml'), 'utf8')) as {
        groups: Array<{ rules: Array<{ alert: string; annotations: { runbook_url: string } }> }>;
      }
    ).groups.flatMap((g) => g.rules);
    const anchors = new Set(
      [...runbook.matchAll(/^#+ (.+)$/gm)].map((m) =>
        m[1]!
          .toLowerCase()
          .replace(/[^a-z0-9 -]/g, '')
          .replace(/ /g, '-'),
      ),
    );
    for (const rule of rules) {
      const anchor = rule.annotations.runbook_url.split('#')[1]!;
      expect(anchors, rule.alert).toContain(anchor);
    }
  });
});
