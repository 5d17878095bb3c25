/**
 * The security review's claims about IAM (docs/security.md), checked on the synthesized stack in
 * every configuration:
 * - every statement that allows a destructive action (reboot, stop, terminate, standby, set
 *   health, register/deregister, SendCommand) either carries a resource-tag condition that an
 *   untagged resource cannot satisfy, or names its resources without a wildcard;
 * - no statement, identity-based or resource-based, allows `*`, an `iam:` action or `sts:AssumeRole`;
 * - roles can be assumed by the Lambda and Step Functions services only, and carry no AWS-managed
 *   policy; the trigger can be invoked by this stack's EventBridge rules only.
 * Each check is a function that returns its findings, and each is shown to fail on a careless
 * statement added to the stack.
 */
import { App } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Template } from 'aws-cdk-lib/assertions';
import { AutoHealProps } from '../lib/autoheal';
import { AutoHealStack } from '../lib/autoheal-stack';
import { DESTRUCTIVE_ACTIONS } from '../lib/tasks';
import { actionsOf, baseProps, resourcesOf, Statement, synth, TG_ARN, TG_ARN_2 } from './helpers';

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Actions that change, stop or take a host out of service (docs/security.md, "IAM"). */
const DESTRUCTIVE = [
  'ec2:RebootInstances',
  'ec2:StopInstances',
  'ec2:TerminateInstances',
  'autoscaling:TerminateInstanceInAutoScalingGroup',
  'autoscaling:EnterStandby',
  'autoscaling:ExitStandby',
  'autoscaling:SetInstanceHealth',
  'elasticloadbalancing:DeregisterTargets',
  'elasticloadbalancing:RegisterTargets',
  'ssm:SendCommand',
];

/** Condition keys that scope an action to tagged resources. */
const TAG_KEY = /^(aws:ResourceTag|autoscaling:ResourceTag|ssm:resourceTag|ec2:ResourceTag)\/.+/i;
/** Operators a missing tag cannot satisfy (no `…IfExists`, no negation). */
const TAG_OPERATORS = ['StringEquals', 'StringEqualsIgnoreCase', 'StringLike'];

/** Actions no statement may allow: IAM itself and assuming roles. */
const FORBIDDEN_SAMPLES = ['iam:PassRole', 'iam:CreateRole', 'iam:AttachRolePolicy', 'iam:PutRolePolicy', 'sts:AssumeRole'];

/** An IAM action pattern (`ec2:Reboot*`, `*`) matches an action; IAM compares case-insensitively. */
export function actionMatches(pattern: string, action: string): boolean {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`, 'i').test(action);
}

const hasWildcard = (resource: Json): boolean => /[*?]/.test(typeof resource === 'string' ? resource : JSON.stringify(resource));

interface Found {
  /** Logical id of the resource the statement belongs to, and which document. */
  where: string;
  statement: Statement & { NotAction?: Json; NotResource?: Json; Principal?: Json };
}

/** Every statement of every permission policy: inline and managed policies, and roles' inline `Policies`. */
function identityStatements(t: Template): Found[] {
  const out: Found[] = [];
  for (const [id, r] of Object.entries(t.toJSON().Resources as Record<string, Json>)) {
    if (r.Type === 'AWS::IAM::Policy' || r.Type === 'AWS::IAM::ManagedPolicy') {
      for (const s of r.Properties.PolicyDocument.Statement) out.push({ where: id, statement: s });
    }
    if (r.Type === 'AWS::IAM::Role') {
      for (const p of r.Properties.Policies ?? []) {
        for (const s of p.PolicyDocument.Statement) out.push({ where: `${id} (inline ${p.PolicyName})`, statement: s });
      }
    }
  }
  return out;
}

/** Every statement of a resource-based policy: KMS key policies and any `PolicyDocument` not on IAM resources (SNS topic policy). */
function resourceStatements(t: Template): Found[] {
  const out: Found[] = [];
  for (const [id, r] of Object.entries(t.toJSON().Resources as Record<string, Json>)) {
    if (r.Type.startsWith('AWS::IAM::')) continue;
    const doc = r.Properties?.KeyPolicy ?? r.Properties?.PolicyDocument;
    for (const s of doc?.Statement ?? []) out.push({ where: id, statement: s });
  }
  return out;
}

const describe_ = (f: Found, why: string): string =>
  `${f.where}: ${why}: ${JSON.stringify(f.statement).slice(0, 300)}`;

/** Why a tag condition does (not) narrow the statement; undefined when it does. */
function tagConditionProblem(condition: Json): string | undefined {
  if (!condition) return 'no condition';
  const tagged = Object.entries(condition as Record<string, Record<string, Json>>).flatMap(([op, keys]) =>
    Object.entries(keys)
      .filter(([k]) => TAG_KEY.test(k))
      .map(([k, v]) => ({ op, k, values: Array.isArray(v) ? v : [v] })),
  );
  if (tagged.length === 0) return 'no resource-tag condition';
  for (const { op, k, values } of tagged) {
    if (!TAG_OPERATORS.includes(op)) return `${op} on ${k} is satisfied without the tag`;
    if (values.length === 0 || values.some((v) => typeof v !== 'string' || v === '' || /[*?]/.test(v))) {
      return `${k} accepts any value`;
    }
  }
  return undefined;
}

/**
 * The Allow statements that grant a destructive action neither under a resource-tag condition nor
 * on named (wildcard-free) resources. NotAction and NotResource are findings by themselves.
 */
export function untaggedDestructive(statements: Found[]): { findings: string[]; seen: Set<string> } {
  const findings: string[] = [];
  const seen = new Set<string>();
  for (const f of statements) {
    const s = f.statement;
    if (s.Effect !== 'Allow') continue;
    if (s.NotAction !== undefined || s.NotResource !== undefined) {
      findings.push(describe_(f, 'NotAction/NotResource in an Allow'));
      continue;
    }
    const hit = DESTRUCTIVE.filter((d) => actionsOf(s).some((p) => actionMatches(p, d)));
    if (hit.length === 0) continue;
    hit.forEach((d) => seen.add(d));
    const wildcardResources = resourcesOf(s).filter(hasWildcard);
    if (wildcardResources.length === 0) continue; // named resources only
    const problem = tagConditionProblem(s.Condition);
    if (problem) findings.push(describe_(f, `${hit.join(', ')} on ${JSON.stringify(wildcardResources)} with ${problem}`));
  }
  return { findings, seen };
}

/** Allow statements with `*`, an `iam:` or `sts:` action (or a pattern matching one), or NotAction. */
export function forbiddenActions(statements: Found[]): string[] {
  const findings: string[] = [];
  for (const f of statements) {
    const s = f.statement;
    if (s.Effect !== 'Allow') continue;
    if (s.NotAction !== undefined) findings.push(describe_(f, 'NotAction in an Allow'));
    for (const a of s.Action === undefined ? [] : actionsOf(s)) {
      const service = a.split(':')[0].toLowerCase();
      if (a === '*' || service === 'iam' || service === 'sts' || FORBIDDEN_SAMPLES.some((x) => actionMatches(a, x))) {
        findings.push(describe_(f, `allows ${a}`));
      }
    }
  }
  return findings;
}

/** The KMS key policy's default statement: kms:* for the account itself (which delegates the key to IAM). */
const isAccountRootKeyAdmin = (f: Found): boolean =>
  JSON.stringify(f.statement.Principal ?? {}).includes(':root') && actionsOf(f.statement).every((a) => a === 'kms:*');

const configurations: Array<[string, AutoHealProps]> = [
  [
    'target groups by ARN, with Slack and Teams',
    baseProps({
      targetGroupArns: [TG_ARN, TG_ARN_2],
      notifications: { emails: ['ops@example.com'], slackWebhookSecretName: 'autoheal/slack', teamsWebhookParameterName: '/autoheal/teams' },
    }),
  ],
  ['target groups by tag', baseProps({ targetGroupArns: undefined, loadBalancerFullNames: undefined, targetGroupTag: { key: 'team', value: 'web' } })],
  ['activity mode', baseProps({ taskMode: 'activity', notifications: { slackWebhookSecretName: 'autoheal/slack' } })],
  [
    'activity mode with target groups by tag',
    baseProps({ taskMode: 'activity', targetGroupArns: undefined, loadBalancerFullNames: undefined, targetGroupTag: { key: 'team', value: 'web' } }),
  ],
];

describe.each(configurations)('with %s', (_name, props) => {
  const { template } = synth(props);
  const identity = identityStatements(template);
  const resource = resourceStatements(template);

  test('every destructive action is tag-conditioned or on named resources only', () => {
    const { findings, seen } = untaggedDestructive([...identity, ...resource]);
    expect(findings).toEqual([]);
    // The check is not vacuous: every destructive action autoheal uses was looked at.
    expect([...seen].sort()).toEqual([...DESTRUCTIVE_ACTIONS].sort());
  });

  test('nothing reboots, stops or terminates EC2 instances directly except RebootInstances', () => {
    const all = [...identity, ...resource].filter((f) => f.statement.Effect === 'Allow');
    for (const a of ['ec2:StopInstances', 'ec2:TerminateInstances']) {
      expect(all.filter((f) => actionsOf(f.statement).some((p) => actionMatches(p, a))).map((f) => f.where)).toEqual([]);
    }
  });

  test('no permission policy allows *, iam: actions or sts:AssumeRole', () => {
    expect(forbiddenActions(identity)).toEqual([]);
    for (const f of identity) {
      for (const a of actionsOf(f.statement)) expect(a).not.toMatch(/:\*$/);
    }
  });

  test('no resource policy allows *, iam: or sts: actions; kms:* only to the account in the key policy', () => {
    expect(forbiddenActions(resource)).toEqual([]);
    const serviceWide = resource.filter((f) => f.statement.Effect === 'Allow' && actionsOf(f.statement).some((a) => /:\*$/.test(a)));
    expect(serviceWide.filter((f) => !isAccountRootKeyAdmin(f)).map((f) => describe_(f, 'service-wide action'))).toEqual([]);
    // No resource policy opens anything to every principal.
    for (const f of resource.filter((x) => x.statement.Effect === 'Allow')) {
      expect(JSON.stringify(f.statement.Principal)).not.toMatch(/"\*"|"AWS":"\*"/);
    }
  });

  test('roles can be assumed by the Lambda and Step Functions services only', () => {
    const roles = Object.entries(template.findResources('AWS::IAM::Role'));
    expect(roles.length).toBeGreaterThan(0);
    for (const [, r] of roles) {
      for (const s of (r as Json).Properties.AssumeRolePolicyDocument.Statement) {
        expect(s.Effect).toBe('Allow');
        expect(s.Action).toBe('sts:AssumeRole');
        expect(Object.keys(s.Principal)).toEqual(['Service']);
        expect(['lambda.amazonaws.com', 'states.amazonaws.com']).toContain(s.Principal.Service);
      }
    }
  });

  test('no role carries an AWS-managed policy', () => {
    for (const [id, r] of Object.entries(template.findResources('AWS::IAM::Role'))) {
      expect([id, (r as Json).Properties.ManagedPolicyArns]).toEqual([id, undefined]);
    }
  });

  test("Lambda functions may be invoked by services only from this stack's rules", () => {
    for (const [, p] of Object.entries(template.findResources('AWS::Lambda::Permission'))) {
      const props_ = (p as Json).Properties;
      expect(props_.Principal).toBe('events.amazonaws.com');
      expect(props_.SourceArn).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/Rule/), 'Arn'] });
    }
  });

  test('the topic refuses publishing without TLS and its policy grants nothing', () => {
    const policies = Object.values(template.findResources('AWS::SNS::TopicPolicy'));
    expect(policies).toHaveLength(1);
    const statements: Json[] = (policies[0] as Json).Properties.PolicyDocument.Statement;
    expect(statements.filter((s) => s.Effect === 'Allow')).toEqual([]);
    expect(statements).toEqual([
      expect.objectContaining({ Effect: 'Deny', Action: 'sns:Publish', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
    ]);
  });
});

describe('the checks can fail', () => {
  /** The stack with one extra role carrying `statement`, checked as above. */
  const withCareless = (statement: iam.PolicyStatement): Template => {
    const app = new App();
    const stack = new AutoHealStack(app, 'AutoHealCareless', { autoheal: baseProps() });
    const role = new iam.Role(stack, 'Careless', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    role.addToPolicy(statement);
    return Template.fromStack(stack);
  };
  const destructiveFindings = (t: Template): string[] => untaggedDestructive(identityStatements(t)).findings;

  test('a destructive action on * is reported', () => {
    const t = withCareless(new iam.PolicyStatement({ actions: ['ec2:TerminateInstances'], resources: ['*'] }));
    expect(destructiveFindings(t)).toEqual([expect.stringMatching(/^CarelessDefaultPolicy.*ec2:TerminateInstances on \["\*"\] with no condition/)]);
  });

  test('a wildcard action that covers a destructive one is reported', () => {
    const t = withCareless(new iam.PolicyStatement({ actions: ['autoscaling:*Standby'], resources: ['*'] }));
    expect(destructiveFindings(t)).toEqual([expect.stringMatching(/autoscaling:EnterStandby, autoscaling:ExitStandby on/)]);
  });

  test('a tag condition an untagged resource satisfies is reported', () => {
    for (const [op, value] of [
      ['StringEqualsIfExists', 'true'],
      ['StringNotEquals', 'false'],
      ['StringLike', '*'],
    ]) {
      const t = withCareless(
        new iam.PolicyStatement({
          actions: ['ec2:RebootInstances'],
          resources: ['arn:aws:ec2:eu-west-1:111122223333:instance/*'],
          conditions: { [op]: { 'aws:ResourceTag/autoheal:managed': value } },
        }),
      );
      expect(destructiveFindings(t)).toHaveLength(1);
    }
  });

  test('a condition on something other than a resource tag is reported', () => {
    const t = withCareless(
      new iam.PolicyStatement({
        actions: ['ssm:SendCommand'],
        resources: ['arn:aws:ec2:eu-west-1:111122223333:instance/*'],
        conditions: { StringEquals: { 'aws:RequestedRegion': 'eu-west-1' } },
      }),
    );
    expect(destructiveFindings(t)).toEqual([expect.stringMatching(/no resource-tag condition/)]);
  });

  test('NotAction in an Allow is reported', () => {
    const t = withCareless(new iam.PolicyStatement({ notActions: ['s3:GetObject'], resources: ['*'] }));
    expect(destructiveFindings(t)).toEqual([expect.stringMatching(/NotAction/)]);
    expect(forbiddenActions(identityStatements(t))).toEqual([expect.stringMatching(/NotAction/)]);
  });

  test('iam:, sts:AssumeRole and * are reported', () => {
    for (const a of ['iam:PassRole', 'iam:*', 'sts:AssumeRole', '*', 'iam:Pass*', 'sts:Assume*']) {
      const t = withCareless(new iam.PolicyStatement({ actions: [a], resources: ['*'] }));
      expect(forbiddenActions(identityStatements(t))).toEqual([expect.stringContaining(`allows ${a}`)]);
    }
  });

  test('an action pattern matches the way IAM matches it', () => {
    expect(actionMatches('ec2:Reboot*', 'ec2:RebootInstances')).toBe(true);
    expect(actionMatches('EC2:rebootinstances', 'ec2:RebootInstances')).toBe(true);
    expect(actionMatches('ec2:Describe*', 'ec2:RebootInstances')).toBe(false);
    expect(actionMatches('ssm:SendCommand', 'ssm:SendCommandX')).toBe(false);
  });
});
