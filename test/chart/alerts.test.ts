import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { find, parseObjects } from '../support/k8s-objects.js';
import { CHART, helmTemplate } from '../support/k8s-tools.js';

/**
 * The chart's alert rules (helm/files/alerts.yaml, the file the PrometheusRule includes) checked and
 * unit-tested by Prometheus's own promtool: series for every alerted metric, and when each alert
 * fires and when it does not, `for` included.
 */

const RULES_FILE = join(CHART, 'files', 'alerts.yaml');
const PROMTOOL_TIMEOUT_MS = 60_000;

interface Rule {
  alert: string;
  annotations: Record<string, string>;
  labels: Record<string, string>;
}
const rules = (
  parse(readFileSync(RULES_FILE, 'utf8')) as { groups: Array<{ rules: Rule[] }> }
).groups.flatMap((g) => g.rules);

function promtool(args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    execFile('promtool', args, { timeout: PROMTOOL_TIMEOUT_MS }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number') reject(error);
      else resolve({ code: error ? Number(error.code) : 0, output: stdout + stderr });
    });
  });
}

/** A firing alert as promtool reports it: the series' labels and the expression's value. */
interface Firing {
  readonly labels: Record<string, string>;
  readonly value?: string;
}

interface AlertCase {
  readonly alert: string;
  readonly series: Record<string, string>;
  /** Evaluation time → the alerts firing then (none: pending or inactive). */
  readonly at: Record<string, Firing[]>;
}

const POD = { namespace: 'matchbook' };
const CASES: AlertCase[] = [
  {
    alert: 'WebSocketHighConnectionCount',
    series: {
      // Above 5000 from minute 1; another pod below; a third dips at minute 4, restarting the 5 minutes.
      'ws_active_connections{namespace="matchbook",job="api",pod="api-a"}': '4000 6000x12',
      'ws_active_connections{namespace="matchbook",job="api",pod="api-b"}': '3000x12',
      'ws_active_connections{namespace="matchbook",job="api",pod="api-c"}': '6000x3 4000 6000x8',
    },
    at: {
      '5m': [],
      '6m': [{ labels: { pod: 'api-a' }, value: '6000' }],
      '9m': [{ labels: { pod: 'api-a' }, value: '6000' }],
      '10m': [
        { labels: { pod: 'api-a' }, value: '6000' },
        { labels: { pod: 'api-c' }, value: '6000' },
      ],
    },
  },
  {
    alert: 'WebSocketMessageBacklog',
    series: {
      'ws_message_queue_size{namespace="matchbook",job="api",pod="api-a"}': '0 20000x5',
      'ws_message_queue_size{namespace="matchbook",job="api",pod="api-b"}': '10000x6',
    },
    at: { '1m': [], '2m': [{ labels: { pod: 'api-a' }, value: '20000' }] },
  },
  {
    alert: 'WebSocketSlowConsumerDisconnectsSurging',
    series: {
      // 2 per second, and 0.5 per second on the other pod. The 5-minute rate passes 1/s once its
      // window holds 3 minutes of the series (minute 3), so the alert fires 5 minutes later.
      'ws_slow_consumer_disconnects_total{namespace="matchbook",job="api",pod="api-a",reason="timeout"}':
        '0+120x12',
      'ws_slow_consumer_disconnects_total{namespace="matchbook",job="api",pod="api-b",reason="timeout"}':
        '0+30x12',
    },
    at: { '2m': [], '7m': [], '8m': [{ labels: { pod: 'api-a' }, value: '2' }] },
  },
  {
    alert: 'WebSocketFeedStale',
    series: {
      'ws_feed_stale{namespace="matchbook",job="api",pod="api-a"}': '0 1x5',
      'ws_feed_stale{namespace="matchbook",job="api",pod="api-b"}': '0x6',
    },
    at: { '1m': [], '2m': [{ labels: { pod: 'api-a' } }] },
  },
  {
    alert: 'WebSocketWorkerRestarts',
    series: {
      'ws_worker_restarts_total{namespace="matchbook",job="api",pod="api-a",reason="died"}': '0 0 1 2 3x10',
      'ws_worker_restarts_total{namespace="matchbook",job="api",pod="api-b",reason="died"}': '0 1x12',
    },
    at: { '1m': [], '6m': [{ labels: { pod: 'api-a' } }] },
  },
  {
    alert: 'WebSocketRejectionsSurging',
    series: {
      // 10 per second for one reason (over 5/s from minute 3), 1 per second for another.
      'ws_connections_rejected_total{namespace="matchbook",job="api",pod="api-a",reason="per_ip_limit"}':
        '0+600x12',
      'ws_connections_rejected_total{namespace="matchbook",job="api",pod="api-a",reason="connect_rate"}':
        '0+60x12',
    },
    at: { '7m': [], '8m': [{ labels: { pod: 'api-a', reason: 'per_ip_limit' }, value: '10' }] },
  },
  {
    alert: 'WebSocketTargetDown',
    series: {
      'up{namespace="matchbook",job="api",pod="api-a",instance="10.1.0.1:9091"}': '1 1 0x10',
      'up{namespace="matchbook",job="api",pod="api-b",instance="10.1.0.2:9091"}': '1x12',
    },
    at: { '3m': [], '4m': [{ labels: { job: 'api', pod: 'api-a', instance: '10.1.0.1:9091' } }] },
  },
];

/** The annotations promtool must report: the rule's own, with $labels and $value filled in. */
function expand(template: string, labels: Record<string, string>, value: string | undefined): string {
  return template
    .replace(/\{\{ \$labels\.(\w+) \}\}/g, (_, name: string) => labels[name] ?? '')
    .replace(/\{\{ \$value \}\}/g, () => {
      if (value === undefined) throw new Error(`the test gives no value for "${template}"`);
      return value;
    });
}

function promtoolTest(rulesFile: string): string {
  const tests = CASES.map((c) => {
    const rule = rules.find((r) => r.alert === c.alert)!;
    return {
      interval: '1m',
      input_series: Object.entries(c.series).map(([series, values]) => ({ series, values })),
      alert_rule_test: Object.entries(c.at).map(([evalTime, firing]) => ({
        eval_time: evalTime,
        alertname: c.alert,
        exp_alerts: firing.map((f) => {
          const labels = { ...POD, ...f.labels };
          return {
            exp_labels: { ...rule.labels, ...labels },
            exp_annotations: Object.fromEntries(
              Object.entries(rule.annotations).map(([k, v]) => [k, expand(v, labels, f.value)]),
            ),
          };
        }),
      })),
    };
  });
  return stringify({ rule_files: [rulesFile], evaluation_interval: '1m', tests });
}

let scratch: string;
beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'matchbook-promtool-'));
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('alert rules, with promtool', () => {
  it('promtool check rules accepts the file', async () => {
    const result = await promtool(['check', 'rules', RULES_FILE]);
    expect(result.output).toContain(`SUCCESS: ${rules.length} rules found`);
    expect(result.code).toBe(0);
  });

  it("has the runbook's alerts and the ones operators need, each with summary, description and runbook_url", () => {
    expect(rules.map((r) => r.alert).sort()).toEqual(CASES.map((c) => c.alert).sort());
    for (const rule of rules) {
      expect(Object.keys(rule.annotations).sort(), rule.alert).toEqual([
        'description',
        'runbook_url',
        'summary',
      ]);
      expect(rule.annotations.runbook_url, rule.alert).toMatch(new RegExp(`#${rule.alert.toLowerCase()}$`));
    }
  });

  it('promtool test rules: each alert fires when it should and not before, `for` included', async () => {
    const file = join(scratch, 'alerts.test.yaml');
    writeFileSync(file, promtoolTest(RULES_FILE));
    const result = await promtool(['test', 'rules', file]);
    expect(result.output).toContain('SUCCESS');
    expect(result.code, result.output).toBe(0);
  });

  it('the PrometheusRule the chart renders (names overridden) passes promtool check rules', async () => {
    const rendered = await helmTemplate([
      '--set',
      'names.service=gw',
      '--show-only',
      'templates/prometheusrule.yaml',
    ]);
    expect(rendered.code, rendered.stderr).toBe(0);
    const spec = (find(parseObjects(rendered.stdout), 'PrometheusRule') as unknown as { spec: unknown }).spec;
    const file = join(scratch, 'rendered-rules.yaml');
    writeFileSync(file, stringify(spec));
    const result = await promtool(['check', 'rules', file]);
    expect(result.code, result.output).toBe(0);
    expect(readFileSync(file, 'utf8')).toContain('up{job="gw"}');
  });
});
