import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { find, type K8sObject, parseObjects, validateObject } from '../support/k8s-objects.js';
import { CHART, helmTemplate, k8sTools, ROOT, run, runOk } from '../support/k8s-tools.js';

/** The chart rendered by the real helm, every object validated offline, and the runbook's edits applied with the real kubectl. */

const EXAMPLES = readdirSync(join(CHART, 'examples')).filter((f) => f.endsWith('.yaml'));
const valueSets: Array<[string, string[]]> = [
  ['default values', []],
  ...EXAMPLES.map((file): [string, string[]] => [`examples/${file}`, ['-f', join(CHART, 'examples', file)]]),
];

interface Container {
  name: string;
  args: string[];
  env: Array<{ name: string; value?: string; valueFrom?: unknown }>;
  ports: Array<{ name: string; containerPort: number }>;
  securityContext: Record<string, unknown>;
  resources: { limits: { memory: string } };
  startupProbe: { httpGet: { path: string; port: string } };
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  lifecycle: { preStop: { exec: { command: string[] } } };
}
interface PodSpec {
  containers: Container[];
  terminationGracePeriodSeconds: number;
  automountServiceAccountToken: boolean;
  securityContext: Record<string, unknown>;
  topologySpreadConstraints: unknown[];
}
type Deployment = K8sObject & {
  spec: {
    replicas?: number;
    strategy: { rollingUpdate: { maxUnavailable: number } };
    template: { metadata: { annotations: Record<string, string> }; spec: PodSpec };
  };
};

async function render(args: string[] = []): Promise<K8sObject[]> {
  return parseObjects(await runOkResult(args));
}
async function runOkResult(args: string[]): Promise<string> {
  const result = await helmTemplate(args);
  if (result.code !== 0) throw new Error(`helm template failed: ${result.stderr}`);
  return result.stdout;
}
function gateway(objects: K8sObject[]): Container {
  return (find(objects, 'Deployment', 'api') as Deployment).spec.template.spec.containers[0]!;
}

let defaults: K8sObject[];
let scratch: string;
beforeAll(async () => {
  k8sTools();
  scratch = mkdtempSync(join(tmpdir(), 'matchbook-chart-'));
  defaults = await render();
}, 120_000);
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe.each(valueSets)('helm chart with %s', (_label, args) => {
  it('passes helm lint --strict', async () => {
    const result = await run(k8sTools().helm, [
      'lint',
      '--strict',
      CHART,
      '--namespace',
      'matchbook',
      ...args,
    ]);
    expect(result.stdout + result.stderr).toContain('0 chart(s) failed');
    expect(result.code).toBe(0);
  });

  it('renders only objects valid against the Kubernetes and prometheus-operator schemas', async () => {
    const objects = await render(args);
    expect(objects.length).toBeGreaterThan(5);
    for (const object of objects) {
      await validateObject(object);
      expect(object.metadata.namespace, `${object.kind}/${object.metadata.name}`).toBe('matchbook');
    }
  });
});

describe.each(valueSets)('public port, private data (issue 16) with %s', (_label, args) => {
  it("the Ingress routes only / (Prefix) to the Service's http port: never the admin port, no snippets", async () => {
    const objects = await render(args);
    const ingresses = objects.filter((o) => o.kind === 'Ingress') as Array<
      K8sObject & {
        metadata: { annotations?: Record<string, string> };
        spec: {
          rules: Array<{
            http: { paths: Array<{ path: string; pathType: string; backend: { service: unknown } }> };
          }>;
        };
      }
    >;
    expect(ingresses).toHaveLength(1);
    const [ingress] = ingresses;
    const paths = ingress!.spec.rules.flatMap((rule) => rule.http.paths);
    // /metrics, /healthz and /readyz travel this path too: the gateway refuses them there (403
    // private_endpoint) because ingress-nginx adds X-Forwarded-For and X-Real-IP to every request.
    expect(paths).toEqual([
      { path: '/', pathType: 'Prefix', backend: { service: { name: 'api', port: { name: 'http' } } } },
    ]);
    // A snippet could serve anything from the controller; many clusters disable them anyway.
    expect(Object.keys(ingress!.metadata.annotations ?? {}).filter((name) => /snippet/i.test(name))).toEqual(
      [],
    );
  });

  it('the probes and the ServiceMonitor use the admin port, which serves direct and forwarded requests alike', async () => {
    const objects = await render(args);
    const container = gateway(objects);
    for (const probe of [container.startupProbe, container.livenessProbe, container.readinessProbe])
      expect(probe.httpGet.port).toBe('admin');
    const monitor = objects.find((o) => o.kind === 'ServiceMonitor') as
      | (K8sObject & { spec: { endpoints: Array<{ port: string; path: string }> } })
      | undefined;
    if (monitor)
      expect(monitor.spec.endpoints).toEqual([expect.objectContaining({ port: 'admin', path: '/metrics' })]);
  });
});

describe('the names, ports and annotations the runbook uses (default values)', () => {
  it('Deployment api and Service api with port 8080 named http, and the admin port', () => {
    const service = find(defaults, 'Service', 'api') as K8sObject & {
      spec: { ports: Array<{ name: string; port: number; targetPort: string }> };
    };
    expect(service.spec.ports).toEqual([
      expect.objectContaining({ name: 'http', port: 8080, targetPort: 'http' }),
      expect.objectContaining({ name: 'admin', port: 9091, targetPort: 'admin' }),
    ]);
    expect(gateway(defaults).ports).toEqual([
      expect.objectContaining({ name: 'http', containerPort: 8080 }),
      expect.objectContaining({ name: 'admin', containerPort: 9091 }),
    ]);
  });

  it('Ingress matchbook-ingress, class nginx, 3600 s timeouts and HTTP/1.1 upstream for the upgrade', () => {
    const ingress = find(defaults, 'Ingress', 'matchbook-ingress') as K8sObject & {
      metadata: { annotations: Record<string, string> };
      spec: { ingressClassName: string; rules: Array<{ http: { paths: Array<{ backend: unknown }> } }> };
    };
    expect(ingress.spec.ingressClassName).toBe('nginx');
    expect(ingress.metadata.annotations).toMatchObject({
      'nginx.ingress.kubernetes.io/proxy-read-timeout': '3600',
      'nginx.ingress.kubernetes.io/proxy-send-timeout': '3600',
      'nginx.ingress.kubernetes.io/proxy-http-version': '1.1',
    });
    expect(ingress.spec.rules[0]!.http.paths[0]!.backend).toEqual({
      service: { name: 'api', port: { name: 'http' } },
    });
  });

  it('every gateway variable is a container env entry, WS_THROTTLE_MS among them', () => {
    const env = gateway(defaults).env;
    expect(env).toContainEqual({ name: 'WS_THROTTLE_MS', value: '0' });
    expect(env).toContainEqual({ name: 'PORT', value: '8080' });
    expect(env).toContainEqual({ name: 'ADMIN_PORT', value: '9091' });
    // null leaves the gateway's own (CPU-limit) default.
    expect(env.find((e) => e.name === 'WS_WORKER_THREADS')).toBeUndefined();
  });

  it('probes, shutdown timing, rollout and disruption settings', () => {
    const deployment = find(defaults, 'Deployment', 'api') as Deployment;
    const pod = deployment.spec.template.spec;
    const c = pod.containers[0]!;
    expect(c.startupProbe.httpGet).toEqual({ path: '/healthz', port: 'admin' });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'admin' });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'admin' });
    expect(c.lifecycle.preStop.exec.command).toEqual(['sleep', '5']);
    // 5 s preStop + 10 s drain spread + 20 s shutdown deadline < 45 s.
    expect(pod.terminationGracePeriodSeconds).toBe(45);
    expect(deployment.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
    // The HPA owns the replica count.
    expect(deployment.spec.replicas).toBeUndefined();
    expect(pod.topologySpreadConstraints).toHaveLength(1);
    expect(find(defaults, 'PodDisruptionBudget', 'api')).toMatchObject({ spec: { maxUnavailable: 1 } });
    const hpa = find(defaults, 'HorizontalPodAutoscaler', 'api') as K8sObject & {
      spec: { behavior: { scaleDown: { stabilizationWindowSeconds: number } } };
    };
    expect(hpa.spec.behavior.scaleDown.stabilizationWindowSeconds).toBe(1800);
  });

  it('a restrictive security context, no service account token, the heap bounded by the memory limit', () => {
    const pod = (find(defaults, 'Deployment', 'api') as Deployment).spec.template.spec;
    const c = pod.containers[0]!;
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(find(defaults, 'ServiceAccount', 'api')).toMatchObject({ automountServiceAccountToken: false });
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(c.securityContext).toMatchObject({
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    });
    expect(c.resources.limits.memory).toBe('1Gi');
    expect(c.args).toEqual([
      'node',
      '--max-semi-space-size=4',
      '--max-old-space-size=512',
      'dist/src/main.js',
    ]);
  });

  it('monitoring: ServiceMonitor on the admin port, the PrometheusRule with the runbook alerts, the dashboard ConfigMap', () => {
    expect(find(defaults, 'ServiceMonitor', 'api')).toMatchObject({
      spec: { endpoints: [{ port: 'admin', path: '/metrics' }] },
    });
    const rule = find(defaults, 'PrometheusRule', 'api') as K8sObject & {
      spec: { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
    };
    const alerts = rule.spec.groups.flatMap((g) => g.rules.map((r) => r.alert));
    expect(alerts).toEqual(
      expect.arrayContaining(['WebSocketHighConnectionCount', 'WebSocketMessageBacklog']),
    );
    const dashboard = find(defaults, 'ConfigMap', 'api-dashboard') as K8sObject & {
      metadata: { labels: Record<string, string> };
      data: Record<string, string>;
    };
    expect(dashboard.metadata.labels.grafana_dashboard).toBe('1');
    expect(JSON.parse(dashboard.data['matchbook-gateway.json']!).templating.list[0].name).toBe('datasource');
  });
});

describe('docs/runbook.md', () => {
  it('names, in namespace matchbook, only objects the chart renders (the publisher with its example file)', async () => {
    const withPublisher = await render(['-f', join(CHART, 'examples', 'publish-upstream.yaml')]);
    const rendered = new Set([...defaults, ...withPublisher].map((o) => `${o.kind}/${o.metadata.name}`));
    const kinds: Record<string, string> = {
      deployment: 'Deployment',
      service: 'Service',
      ingress: 'Ingress',
      hpa: 'HorizontalPodAutoscaler',
    };
    const named = readFileSync(join(ROOT, 'docs', 'runbook.md'), 'utf8')
      .split('\n')
      .filter((line) => line.includes('-n matchbook'))
      .flatMap((line) => [...line.matchAll(/\b(deployment|service|ingress|hpa)[/ ]([a-z][a-z0-9-]*)/g)])
      .map((m) => `${kinds[m[1]!]}/${m[2]}`);
    expect(named).toEqual(
      expect.arrayContaining(['Deployment/api', 'Ingress/matchbook-ingress', 'HorizontalPodAutoscaler/api']),
    );
    expect(named.filter((n) => !rendered.has(n))).toEqual([]);
  });
});

describe("the runbook's edits, applied offline by the real kubectl", () => {
  function write(name: string, object: K8sObject): string {
    const file = join(scratch, name);
    // JSON, which kubectl reads exactly (its YAML 1.1 would take an unquoted "off" for a boolean).
    writeFileSync(file, JSON.stringify(object));
    return file;
  }

  it('kubectl set env deployment/api WS_WORKER_THREADS=8 and WS_THROTTLE_MS=100 override the env entries', async () => {
    const file = write('deployment.json', find(defaults, 'Deployment', 'api'));
    const out = await runOk(k8sTools().kubectl, [
      'set',
      'env',
      '--local',
      '-f',
      file,
      'WS_WORKER_THREADS=8',
      'WS_THROTTLE_MS=100',
      '-o',
      'yaml',
    ]);
    const env = gateway(parseObjects(out)).env;
    expect(env).toContainEqual({ name: 'WS_WORKER_THREADS', value: '8' });
    expect(env).toContainEqual({ name: 'WS_THROTTLE_MS', value: '100' });
    expect(env.filter((e) => e.name === 'WS_THROTTLE_MS')).toHaveLength(1);
  });

  it("kubectl annotate ingress matchbook-ingress with the runbook's timeouts applies as written", async () => {
    const file = write('ingress.json', find(defaults, 'Ingress', 'matchbook-ingress'));
    const out = await runOk(k8sTools().kubectl, [
      'annotate',
      '--local',
      '-f',
      file,
      'nginx.ingress.kubernetes.io/proxy-read-timeout=3600',
      'nginx.ingress.kubernetes.io/proxy-send-timeout=3600',
      '-o',
      'yaml',
    ]);
    expect(parseObjects(out)[0]!.metadata.annotations).toMatchObject({
      'nginx.ingress.kubernetes.io/proxy-read-timeout': '3600',
      'nginx.ingress.kubernetes.io/proxy-send-timeout': '3600',
    });
  });
});

describe('values the chart refuses, with the reason', () => {
  it.each([
    [['--set', 'terminationGracePeriodSeconds=30'], 'terminationGracePeriodSeconds=30 must be longer than'],
    [['--set', 'env.SHUTDOWN_TIMEOUT_MS=60000'], 'SHUTDOWN_TIMEOUT_MS (60000ms)'],
    [['--set', 'env.SHUTDOWN_TIMEOUT_MS=null'], 'env.SHUTDOWN_TIMEOUT_MS must be set'],
    [['--set', 'env.WS_WORKER_THREADS=65'], 'WS_WORKER_THREADS'],
    [['--set', 'env.WS_THROTTLE_MS=-1'], 'WS_THROTTLE_MS'],
    [['--set', 'env.FEED_SOURCE=kafka'], 'FEED_SOURCE'],
    [['--set', 'env.PORT=9000'], 'PORT'],
    [['--set', 'env.WS_WORKER_THREAD=4'], 'WS_WORKER_THREAD'],
    [['--set', 'resources.limits.memory=1G'], 'memory'],
    [['--set', 'keda.enabled=true'], 'alternatives'],
  ])('%j', async (args, reason) => {
    const result = await helmTemplate(args);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(reason);
  });
});

describe('configuration changes roll the pods', () => {
  function checksum(objects: K8sObject[]): string {
    return (find(objects, 'Deployment', 'api') as Deployment).spec.template.metadata.annotations[
      'checksum/config'
    ]!;
  }
  it('Redis Sentinel: the variables as env entries, both passwords from Secrets, a created one holding each under its key', async () => {
    const objects = await render([
      '--set-string',
      'env.REDIS_SENTINELS=s0:26379\\,s1:26379',
      '--set',
      'env.REDIS_SENTINEL_MASTER=mymaster',
      '--set',
      'redisPassword.value=server-secret',
      '--set',
      'redisSentinelPassword.value=sentinel-secret',
    ]);
    const env = gateway(objects).env;
    expect(env).toContainEqual({ name: 'REDIS_SENTINELS', value: 's0:26379,s1:26379' });
    expect(env).toContainEqual({ name: 'REDIS_SENTINEL_MASTER', value: 'mymaster' });
    expect(env).toContainEqual({
      name: 'REDIS_SENTINEL_PASSWORD',
      valueFrom: { secretKeyRef: { name: 'api-redis', key: 'sentinel-password' } },
    });
    expect(env).toContainEqual({
      name: 'REDIS_PASSWORD',
      valueFrom: { secretKeyRef: { name: 'api-redis', key: 'password' } },
    });
    const secret = find(objects, 'Secret', 'api-redis') as K8sObject & { stringData: Record<string, string> };
    expect(secret.stringData).toEqual({ password: 'server-secret', 'sentinel-password': 'sentinel-secret' });
    expect(defaults.filter((o) => o.kind === 'Secret')).toEqual([]);
    expect(gateway(defaults).env.find((e) => e.name.startsWith('REDIS_SENTINEL'))).toBeUndefined();
  });

  it('a different env value or Redis password changes the checksum annotation', async () => {
    const base = checksum(defaults);
    expect(checksum(await render(['--set', 'env.WS_THROTTLE_MS=100']))).not.toBe(base);
    expect(checksum(await render(['--set', 'redisPassword.value=secret']))).not.toBe(base);
    expect(checksum(await render())).toBe(base);
  });

  it('overridden names are followed everywhere, and large numbers are not written as 1e+07', async () => {
    const objects = await render([
      '--set',
      'names.deployment=gw,names.service=gw-svc,names.ingress=gw-ing',
      '--set',
      'env.PUBLISH_MAXLEN=10000000',
    ]);
    find(objects, 'Deployment', 'gw');
    find(objects, 'Service', 'gw-svc');
    expect(find(objects, 'Ingress', 'gw-ing')).toMatchObject({
      spec: { rules: [{ http: { paths: [{ backend: { service: { name: 'gw-svc' } } }] } }] },
    });
    expect(JSON.stringify(find(objects, 'PrometheusRule', 'gw'))).toContain('up{job=\\"gw-svc\\"}');
    expect(gateway([{ ...find(objects, 'Deployment', 'gw'), metadata: { name: 'api' } }]).env).toContainEqual(
      {
        name: 'PUBLISH_MAXLEN',
        value: '10000000',
      },
    );
  });
});
