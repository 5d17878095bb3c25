/**
 * Test helpers. Tests never need the real Lambda binaries or the real SSM documents:
 * `lambdaCodeDir()` makes a temporary folder with a dummy `<name>/bootstrap` for every function,
 * and FIXTURE_SSM_DIR holds minimal Command documents.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AutoHealProps } from '../lib/autoheal';
import { AutoHealStack } from '../lib/autoheal-stack';
import { TASKS, TRIGGER_NAME } from '../lib/tasks';

export const FIXTURE_SSM_DIR = path.join(__dirname, 'fixtures', 'ssm');

export const TG_ARN = 'arn:aws:elasticloadbalancing:eu-west-1:111122223333:targetgroup/web/0123456789abcdef';
export const TG_ARN_2 = 'arn:aws:elasticloadbalancing:eu-west-1:111122223333:targetgroup/api/fedcba9876543210';
export const LB_NAME = 'app/web-alb/00112233445566aa';

export const FUNCTION_NAMES = [...TASKS.map((t) => t.name), TRIGGER_NAME];

let codeDir: string | undefined;

/** A folder with a dummy `<name>/bootstrap` for every function (made once per test file). */
export function lambdaCodeDir(): string {
  if (!codeDir) {
    codeDir = mkdtempSync(path.join(tmpdir(), 'autoheal-lambda-'));
    for (const name of FUNCTION_NAMES) {
      mkdirSync(path.join(codeDir, name));
      writeFileSync(path.join(codeDir, name, 'bootstrap'), '#!/bin/sh\n# test stand-in for the cargo-lambda binary\n');
    }
  }
  return codeDir;
}

/** Props that synthesize: one target group with its load balancer, test code and documents. */
export function baseProps(overrides: Partial<AutoHealProps> = {}): AutoHealProps {
  return {
    targetGroupArns: [TG_ARN],
    loadBalancerFullNames: { [TG_ARN]: LB_NAME },
    lambdaCodeDir: lambdaCodeDir(),
    ssmDir: FIXTURE_SSM_DIR,
    ...overrides,
  };
}

export interface Synth {
  app: App;
  stack: AutoHealStack;
  template: Template;
}

export function synth(props: AutoHealProps = baseProps()): Synth {
  const app = new App();
  const stack = new AutoHealStack(app, 'AutoHealTest', { autoheal: props });
  return { app, stack, template: Template.fromStack(stack) };
}

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: Json;
  Condition?: Json;
}

export const actionsOf = (s: Statement): string[] => (Array.isArray(s.Action) ? s.Action : [s.Action]);
export const resourcesOf = (s: Statement): Json[] => (Array.isArray(s.Resource) ? s.Resource : [s.Resource]);

/** Every statement of every inline and managed policy in the template, with where it comes from. */
export function allStatements(template: Template): Array<{ policy: string; statement: Statement }> {
  const out: Array<{ policy: string; statement: Statement }> = [];
  for (const type of ['AWS::IAM::Policy', 'AWS::IAM::ManagedPolicy']) {
    for (const [id, res] of Object.entries(template.findResources(type))) {
      for (const st of (res as Json).Properties.PolicyDocument.Statement) out.push({ policy: id, statement: st });
    }
  }
  return out;
}

/** The statements that apply to a Lambda function (its role's inline policies), by function name. */
export function functionStatements(template: Template, functionName: string): Statement[] {
  const fns = template.findResources('AWS::Lambda::Function', {
    Properties: { Environment: { Variables: { AUTOHEAL_TASK: functionName } } },
  });
  const ids = Object.keys(fns);
  if (ids.length !== 1) throw new Error(`expected one function ${functionName}, found ${ids.length}`);
  const roleId = (fns[ids[0]] as Json).Properties.Role['Fn::GetAtt'][0];
  const policies = template.findResources('AWS::IAM::Policy');
  return Object.values(policies)
    .filter((p: Json) => p.Properties.Roles.some((r: Json) => r.Ref === roleId))
    .flatMap((p: Json) => p.Properties.PolicyDocument.Statement);
}

/** The logical id of the function with AUTOHEAL_TASK = name. */
export function functionId(template: Template, name: string): string {
  const fns = template.findResources('AWS::Lambda::Function', {
    Properties: { Environment: { Variables: { AUTOHEAL_TASK: name } } },
  });
  return Object.keys(fns)[0];
}

/** `arn:<partition>:states:<region>:<account>:execution:<machine name>:*`, as CDK writes it. */
export function executionsOf(machineId: string): Json {
  return {
    'Fn::Join': [
      '',
      [
        'arn:',
        { Ref: 'AWS::Partition' },
        ':states:',
        { Ref: 'AWS::Region' },
        ':',
        { Ref: 'AWS::AccountId' },
        ':execution:',
        { 'Fn::GetAtt': [machineId, 'Name'] },
        ':*',
      ],
    ],
  };
}

/** `arn:<partition>:ssm:<region>:<account>:parameter/<name>`, as CDK writes it (name without its leading /). */
export function parameterArnOf(name: string): Json {
  return {
    'Fn::Join': [
      '',
      ['arn:', { Ref: 'AWS::Partition' }, ':ssm:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, `:parameter/${name}`],
    ],
  };
}

/** The one managed policy whose logical id starts with `AutoHeal<name>`, and its statements. */
export function managedPolicy(template: Template, name: string): { id: string; statements: Statement[] } {
  const found = Object.entries(template.findResources('AWS::IAM::ManagedPolicy')).filter(([id]) => id.startsWith(`AutoHeal${name}`));
  if (found.length !== 1) throw new Error(`expected one managed policy ${name}, found ${found.length}`);
  const [id, res] = found[0];
  return { id, statements: (res as Json).Properties.PolicyDocument.Statement };
}
