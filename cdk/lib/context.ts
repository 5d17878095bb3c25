/**
 * CDK context (cdk.json `context`, or `-c name=value` on the command line) to AutoHeal props.
 * Values from cdk.json may be JSON (arrays, objects, booleans); values from `-c` are strings.
 */
import { readFileSync } from 'fs';
import * as path from 'path';
import { Duration } from 'aws-cdk-lib';
import { AutoHealProps } from './autoheal';

/** Read one context value; `undefined` when not set. */
export type ContextLookup = (key: string) => unknown;

/** The flags bin/app.ts reads (README.md, "Context flags"). */
export const CONTEXT_FLAGS = [
  'targetGroupArns',
  'targetGroupTag',
  'loadBalancerFullNames',
  'schedule',
  'dryRun',
  'policy',
  'emails',
  'slackSecret',
  'teamsSecret',
  'slackParameter',
  'teamsParameter',
  'architecture',
  'lambdaCodeDir',
  'taskMode',
  'ssmDir',
  'stackName',
] as const;

export interface AppSettings {
  readonly stackName: string;
  readonly props: AutoHealProps;
  /** True when no target group was given and cdk.json's `example` was used. */
  readonly usedExample: boolean;
}

const fail = (flag: string, msg: string): never => {
  throw new Error(`context ${flag}: ${msg}`);
};

const present = (v: unknown): boolean => v !== undefined && v !== null && v !== '';

export function list(flag: string, v: unknown): string[] | undefined {
  if (!present(v)) return undefined;
  if (Array.isArray(v)) return v.map((x) => String(x).trim()).filter((x) => x.length > 0);
  if (typeof v === 'string') {
    return v
      .split(',')
      .map((x) => x.trim())
      .filter((x) => x.length > 0);
  }
  return fail(flag, `expected a comma-separated list, got ${JSON.stringify(v)}`);
}

export function bool(flag: string, v: unknown): boolean | undefined {
  if (!present(v)) return undefined;
  if (typeof v === 'boolean') return v;
  const s = String(v).toLowerCase();
  if (['true', '1', 'yes'].includes(s)) return true;
  if (['false', '0', 'no'].includes(s)) return false;
  return fail(flag, `expected true or false, got ${JSON.stringify(v)}`);
}

function keyValue(flag: string, v: unknown): { key: string; value: string } | undefined {
  if (!present(v)) return undefined;
  if (typeof v === 'object' && v !== null && 'key' in v && 'value' in v) {
    const o = v as { key: unknown; value: unknown };
    return { key: String(o.key), value: String(o.value) };
  }
  const s = String(v);
  const i = s.indexOf('=');
  if (i <= 0) return fail(flag, `expected key=value, got ${JSON.stringify(v)}`);
  return { key: s.slice(0, i), value: s.slice(i + 1) };
}

/** `{tgArn: lbFullName}` or `tgArn=lbFullName,tgArn=lbFullName` (ARNs contain no `=`). */
function map(flag: string, v: unknown): Record<string, string> | undefined {
  if (!present(v)) return undefined;
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, String(x)]));
  }
  const s = String(v).trim();
  if (s.startsWith('{')) return map(flag, parseJson(flag, s));
  const out: Record<string, string> = {};
  for (const pair of list(flag, s) ?? []) {
    const i = pair.indexOf('=');
    if (i <= 0) fail(flag, `expected targetGroupArn=app/<name>/<id>, got ${JSON.stringify(pair)}`);
    out[pair.slice(0, i)] = pair.slice(i + 1);
  }
  return out;
}

function parseJson(flag: string, s: string): unknown {
  try {
    return JSON.parse(s);
  } catch (e) {
    return fail(flag, `not valid JSON: ${(e as Error).message}`);
  }
}

/** A JSON object, a JSON string, or the path of a JSON file. */
function policy(flag: string, v: unknown, baseDir: string): Record<string, unknown> | undefined {
  if (!present(v)) return undefined;
  let p: unknown = v;
  if (typeof v === 'string') {
    const s = v.trim();
    if (s.startsWith('{')) {
      p = parseJson(flag, s);
    } else {
      const file = path.resolve(baseDir, s);
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (e) {
        return fail(flag, `expected a JSON object or the path of a JSON file; cannot read ${file}: ${(e as Error).message}`);
      }
      p = parseJson(flag, text);
    }
  }
  if (typeof p !== 'object' || p === null || Array.isArray(p)) return fail(flag, 'the policy must be a JSON object');
  return p as Record<string, unknown>;
}

function oneOf<T extends string>(flag: string, v: unknown, allowed: readonly T[]): T | undefined {
  if (!present(v)) return undefined;
  const s = String(v);
  if (!(allowed as readonly string[]).includes(s)) fail(flag, `expected one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
  return s as T;
}

function minutes(flag: string, v: unknown): Duration | undefined {
  if (!present(v)) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) fail(flag, `expected a whole number of minutes ≥ 1, got ${JSON.stringify(v)}`);
  return Duration.minutes(n);
}

/**
 * The stack settings from context. `baseDir` resolves relative paths (the cdk/ folder). With no
 * target group given, the `example` context of cdk.json is used so that `cdk synth` works out of
 * the box; `usedExample` tells the caller to warn.
 */
export function settingsFromContext(get: ContextLookup, baseDir: string): AppSettings {
  const unknownFlag = (get('targetGroupArn') ?? get('targetGroups')) !== undefined;
  if (unknownFlag) fail('targetGroupArn', 'did you mean targetGroupArns (a comma-separated list)?');

  let targetGroupArns = list('targetGroupArns', get('targetGroupArns'));
  const targetGroupTag = keyValue('targetGroupTag', get('targetGroupTag'));
  let loadBalancerFullNames = map('loadBalancerFullNames', get('loadBalancerFullNames'));
  let usedExample = false;
  if (!targetGroupArns?.length && !targetGroupTag) {
    const example = get('example') as { targetGroupArn?: string; loadBalancerFullName?: string } | undefined;
    if (example?.targetGroupArn) {
      usedExample = true;
      targetGroupArns = [example.targetGroupArn];
      if (example.loadBalancerFullName && !loadBalancerFullNames) {
        loadBalancerFullNames = { [example.targetGroupArn]: example.loadBalancerFullName };
      }
    }
  }
  const lambdaCodeDir = get('lambdaCodeDir');
  const ssmDir = get('ssmDir');
  const props: AutoHealProps = {
    targetGroupArns: targetGroupArns?.length ? targetGroupArns : undefined,
    targetGroupTag,
    loadBalancerFullNames,
    schedule: minutes('schedule', get('schedule')),
    dryRun: bool('dryRun', get('dryRun')),
    policy: policy('policy', get('policy'), baseDir),
    notifications: {
      emails: list('emails', get('emails')),
      slackWebhookSecretName: present(get('slackSecret')) ? String(get('slackSecret')) : undefined,
      teamsWebhookSecretName: present(get('teamsSecret')) ? String(get('teamsSecret')) : undefined,
      slackWebhookParameterName: present(get('slackParameter')) ? String(get('slackParameter')) : undefined,
      teamsWebhookParameterName: present(get('teamsParameter')) ? String(get('teamsParameter')) : undefined,
    },
    architecture: oneOf('architecture', get('architecture'), ['arm64', 'x86_64'] as const),
    lambdaCodeDir: present(lambdaCodeDir) ? path.resolve(baseDir, String(lambdaCodeDir)) : undefined,
    taskMode: oneOf('taskMode', get('taskMode'), ['lambda', 'activity'] as const),
    ssmDir: present(ssmDir) ? path.resolve(baseDir, String(ssmDir)) : undefined,
  };
  const stackName = present(get('stackName')) ? String(get('stackName')) : 'AutoHeal';
  return { stackName, props, usedExample };
}
