/**
 * The tasks of the state machine: one Lambda per task (cargo-lambda binary `<name>/bootstrap`), the
 * placeholder it fills in statemachine/autoheal.asl.json, and exactly the IAM statements it needs.
 *
 * Least privilege, in three kinds of statement:
 * - `unscoped`: read-only Describe/Get/List actions that IAM cannot scope to a resource (the
 *   Service Authorization Reference lists no resource type for them), so they take `*`;
 * - `managed`: destructive actions, allowed only on resources tagged `autoheal:managed=true`;
 * - statements on our own resources (tables, topic, SSM documents, target groups) by ARN.
 */
import { ArnFormat, Stack } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';

/** The tag an instance or Auto Scaling group must carry before autoheal may change it. */
export const MANAGED_TAG_KEY = 'autoheal:managed';
export const MANAGED_CONDITION = { StringEquals: { [`aws:ResourceTag/${MANAGED_TAG_KEY}`]: 'true' } };

/** Actions that change or stop a host; each must carry the tag condition or a non-`*` resource. */
export const DESTRUCTIVE_ACTIONS = [
  'ec2:RebootInstances',
  'autoscaling:TerminateInstanceInAutoScalingGroup',
  'autoscaling:SetInstanceHealth',
  'autoscaling:EnterStandby',
  'autoscaling:ExitStandby',
  'elasticloadbalancing:RegisterTargets',
  'elasticloadbalancing:DeregisterTargets',
  'ssm:SendCommand',
];

/**
 * The only actions granted on `*`. Each has no resource type in the Service Authorization
 * Reference, so `*` is the narrowest resource IAM accepts.
 */
export const UNSCOPABLE_ACTIONS = [
  'autoscaling:DescribeAutoScalingGroups',
  'autoscaling:DescribeAutoScalingInstances',
  'ec2:DescribeInstanceStatus',
  'ec2:DescribeInstances',
  'elasticloadbalancing:DescribeLoadBalancers',
  'elasticloadbalancing:DescribeTags',
  'elasticloadbalancing:DescribeTargetGroupAttributes',
  'elasticloadbalancing:DescribeTargetGroups',
  'elasticloadbalancing:DescribeTargetHealth',
  'ssm:DescribeInstanceInformation',
  'ssm:GetCommandInvocation',
  'ssm:ListCommandInvocations',
  // Added by CDK for X-Ray tracing (Lambda and Step Functions) and for Step Functions logging.
  'xray:PutTraceSegments',
  'xray:PutTelemetryRecords',
  'xray:GetSamplingRules',
  'xray:GetSamplingTargets',
  'logs:CreateLogDelivery',
  'logs:GetLogDelivery',
  'logs:UpdateLogDelivery',
  'logs:DeleteLogDelivery',
  'logs:ListLogDeliveries',
  'logs:PutResourcePolicy',
  'logs:DescribeResourcePolicies',
  'logs:DescribeLogGroups',
];

/** Which target groups autoheal may register and deregister targets in. */
export type TargetGroupScope =
  | { readonly kind: 'arns'; readonly arns: string[] }
  | { readonly kind: 'tag'; readonly key: string; readonly value: string };

/** Everything a task's statements may point at. */
export interface TaskResources {
  readonly incidents: dynamodb.ITable;
  readonly leases: dynamodb.ITable;
  readonly policies: dynamodb.ITable;
  readonly topic: sns.ITopic;
  readonly topicKey: kms.IKey;
  readonly documentArns: { diagnostics: string; restartServices: string; verifyHealth: string };
  readonly targetGroups: TargetGroupScope;
  readonly secrets: secretsmanager.ISecret[];
  /**
   * The SSM parameters notify reads a webhook URL from with `GetParameter` (WithDecryption):
   * `/aws/reference/secretsmanager/<secret name>` for each secret, and each SecureString parameter.
   */
  readonly webhookParameterArns: string[];
}

export interface TaskSpec {
  /** The cargo-lambda binary name: `<lambdaCodeDir>/<name>/bootstrap`. */
  readonly name: string;
  /** The `${...}` placeholder in the definition. */
  readonly placeholder: string;
  /** Construct id. */
  readonly id: string;
  readonly description: string;
  /** Read-only actions the task needs that IAM cannot scope (granted on `*`); all in UNSCOPABLE_ACTIONS. */
  readonly unscoped: string[];
  /** The statements on named resources this task needs, beyond logging and X-Ray. */
  readonly statements: (scope: Construct, r: TaskResources) => iam.PolicyStatement[];
  /** Extra grants that CDK expresses best itself (e.g. reading a secret). */
  readonly grants?: (grantee: iam.IGrantable, r: TaskResources) => void;
}

/** The one statement on `*`: read-only actions without resource-level permissions. */
export const unscopedStatement = (actions: string[]): iam.PolicyStatement => {
  for (const a of actions) {
    if (!UNSCOPABLE_ACTIONS.includes(a)) throw new Error(`autoheal: ${a} is not in UNSCOPABLE_ACTIONS`);
  }
  return new iam.PolicyStatement({ actions, resources: ['*'] });
};

export const instanceArn = (scope: Construct): string =>
  Stack.of(scope).formatArn({ service: 'ec2', resource: 'instance', resourceName: '*' });

export const asgArn = (scope: Construct): string =>
  Stack.of(scope).formatArn({
    service: 'autoscaling',
    resource: 'autoScalingGroup',
    resourceName: '*:autoScalingGroupName/*',
    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
  });

/** Parameter Store's name for a Secrets Manager secret: GetParameter on it returns the secret's value. */
export const secretReferenceParameterName = (secretName: string): string => `/aws/reference/secretsmanager/${secretName}`;

/** `arn:<partition>:ssm:<region>:<account>:parameter/<name without its leading slash>` */
export const parameterArn = (scope: Construct, name: string): string =>
  Stack.of(scope).formatArn({ service: 'ssm', resource: 'parameter', resourceName: name.replace(/^\//, '') });

export const anyTargetGroupArn = (scope: Construct): string =>
  Stack.of(scope).formatArn({ service: 'elasticloadbalancing', resource: 'targetgroup', resourceName: '*/*' });

/** A cdk-nag acknowledgment: a rule (or one finding of it) and why it does not apply. */
export interface Acknowledgment {
  readonly id: string;
  readonly reason: string;
}

/**
 * The ARN patterns with a wildcard that autoheal uses, how cdk-nag prints them, and what they
 * stand for. Each is allowed only together with a tag condition (checked here and by the tests).
 */
const WILDCARD_ARNS = (scope: Construct) => [
  {
    arn: instanceArn(scope),
    nag: 'arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:instance/*',
    what: 'EC2 instances',
  },
  {
    arn: asgArn(scope),
    nag: 'arn:<AWS::Partition>:autoscaling:<AWS::Region>:<AWS::AccountId>:autoScalingGroup:*:autoScalingGroupName/*',
    what: 'Auto Scaling groups',
  },
  {
    arn: anyTargetGroupArn(scope),
    nag: 'arn:<AWS::Partition>:elasticloadbalancing:<AWS::Region>:<AWS::AccountId>:targetgroup/*/*',
    what: 'target groups',
  },
];

/**
 * One acknowledgment of AwsSolutions-IAM5 per wildcard ARN pattern in `statements`, naming the
 * actions and the tag condition that narrows them. Throws if such a statement has no condition.
 */
export function conditionedWildcardAcknowledgments(scope: Construct, statements: iam.PolicyStatement[]): Acknowledgment[] {
  const byNag = new Map<string, { what: string; parts: string[] }>();
  for (const st of statements) {
    for (const w of WILDCARD_ARNS(scope)) {
      if (!st.resources.includes(w.arn)) continue;
      const conditions = st.conditions as Record<string, Record<string, unknown>>;
      const keys = Object.values(conditions ?? {}).flatMap((c) => Object.entries(c).map(([k, v]) => `${k}=${String(v)}`));
      if (keys.length === 0) throw new Error(`autoheal: ${st.actions.join(', ')} on all ${w.what} without a tag condition`);
      const entry = byNag.get(w.nag) ?? { what: w.what, parts: [] };
      entry.parts.push(`${st.actions.join(', ')} only where ${keys.join(' and ')}`);
      byNag.set(w.nag, entry);
    }
  }
  return [...byNag.entries()].map(([nag, e]) => ({
    id: `AwsSolutions-IAM5[Resource::${nag}]`,
    reason: `IAM5: the ${e.what} are chosen at run time, so the ARN has a wildcard; the tag condition narrows it: ${e.parts.join('; ')}`,
  }));
}

/** A destructive action on instances tagged autoheal:managed=true. */
const onManagedInstances = (scope: Construct, ...actions: string[]): iam.PolicyStatement =>
  new iam.PolicyStatement({ actions, resources: [instanceArn(scope)], conditions: MANAGED_CONDITION });

/** A destructive action on Auto Scaling groups tagged autoheal:managed=true. */
const onManagedGroups = (scope: Construct, ...actions: string[]): iam.PolicyStatement =>
  new iam.PolicyStatement({ actions, resources: [asgArn(scope)], conditions: MANAGED_CONDITION });

/** Register/deregister, only in the configured target groups. */
const onTargetGroups = (scope: Construct, r: TaskResources, ...actions: string[]): iam.PolicyStatement => {
  if (r.targetGroups.kind === 'arns') {
    return new iam.PolicyStatement({ actions, resources: r.targetGroups.arns });
  }
  return new iam.PolicyStatement({
    actions,
    resources: [anyTargetGroupArn(scope)],
    conditions: { StringEquals: { [`aws:ResourceTag/${r.targetGroups.key}`]: r.targetGroups.value } },
  });
};

/** ssm:SendCommand: one of our documents, on a managed instance (two statements, as the tag is only on the instance). */
const sendCommand = (scope: Construct, documentArn: string): iam.PolicyStatement[] => [
  new iam.PolicyStatement({ actions: ['ssm:SendCommand'], resources: [documentArn] }),
  onManagedInstances(scope, 'ssm:SendCommand'),
];

export const INCIDENTS_INDEX = 'InstanceId-Timestamp';

const readIncidents = (r: TaskResources): iam.PolicyStatement =>
  new iam.PolicyStatement({
    actions: ['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:Query'],
    resources: [r.incidents.tableArn, `${r.incidents.tableArn}/index/${INCIDENTS_INDEX}`],
  });
const writeIncidents = (r: TaskResources): iam.PolicyStatement =>
  new iam.PolicyStatement({
    actions: ['dynamodb:PutItem', 'dynamodb:UpdateItem'],
    resources: [r.incidents.tableArn],
  });
/** Which instances have a heal in flight (detect and decide read the leases, never write them). */
const readLeases = (r: TaskResources): iam.PolicyStatement =>
  new iam.PolicyStatement({
    actions: ['dynamodb:GetItem', 'dynamodb:BatchGetItem'],
    resources: [r.leases.tableArn],
  });
const readPolicies = (r: TaskResources): iam.PolicyStatement =>
  new iam.PolicyStatement({
    actions: ['dynamodb:GetItem', 'dynamodb:BatchGetItem'],
    resources: [r.policies.tableArn],
  });

/** The tasks in the order the state machine reaches them. */
export const TASKS: TaskSpec[] = [
  {
    name: 'detect',
    placeholder: 'DetectFunctionArn',
    id: 'Detect',
    description: 'autoheal: target health, fleet-safety verdict and one incident id per unhealthy target',
    unscoped: [
      'elasticloadbalancing:DescribeTargetHealth',
      'elasticloadbalancing:DescribeTargetGroups',
      'elasticloadbalancing:DescribeLoadBalancers',
      'elasticloadbalancing:DescribeTags',
      'ec2:DescribeInstances',
      'ec2:DescribeInstanceStatus',
    ],
    statements: (_s, r) => [
      readIncidents(r),
      writeIncidents(r),
      readPolicies(r),
      readLeases(r),
    ],
  },
  {
    name: 'lease',
    placeholder: 'LeaseFunctionArn',
    id: 'Lease',
    description: 'autoheal: acquire and release the per-instance lease (conditional writes with expiry)',
    unscoped: [],
    statements: (_s, r) => [
      new iam.PolicyStatement({
        actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
        resources: [r.leases.tableArn],
      }),
    ],
  },
  {
    name: 'diagnose',
    placeholder: 'DiagnoseFunctionArn',
    id: 'Diagnose',
    description: 'autoheal: EC2 status checks, SSM agent ping and the Diagnostics document on the host',
    unscoped: [
      'elasticloadbalancing:DescribeTargetHealth',
      'ec2:DescribeInstances',
      'ec2:DescribeInstanceStatus',
      'ssm:DescribeInstanceInformation',
      'ssm:GetCommandInvocation',
      'ssm:ListCommandInvocations',
    ],
    statements: (s, r) => [
      ...sendCommand(s, r.documentArns.diagnostics),
      readPolicies(r),
    ],
  },
  {
    name: 'decide',
    placeholder: 'DecideFunctionArn',
    id: 'Decide',
    description: 'autoheal: the decision engine (reads group health, leases, incident history and per-instance policy only)',
    unscoped: ['elasticloadbalancing:DescribeTargetHealth', 'ec2:DescribeInstances', 'ec2:DescribeInstanceStatus'],
    statements: (_s, r) => [readIncidents(r), readPolicies(r), readLeases(r)],
  },
  {
    name: 'drain',
    placeholder: 'DrainFunctionArn',
    id: 'Drain',
    description: 'autoheal: deregister the target or put it in Standby',
    unscoped: [
      'elasticloadbalancing:DescribeTargetHealth',
      'elasticloadbalancing:DescribeTargetGroupAttributes',
      'autoscaling:DescribeAutoScalingInstances',
    ],
    statements: (s, r) => [
      onTargetGroups(s, r, 'elasticloadbalancing:DeregisterTargets'),
      onManagedGroups(s, 'autoscaling:EnterStandby'),
    ],
  },
  {
    name: 'restart_service',
    placeholder: 'RestartServiceFunctionArn',
    id: 'RestartService',
    description: 'autoheal: restart the failed services through the RestartServices document',
    unscoped: ['ssm:GetCommandInvocation', 'ssm:ListCommandInvocations'],
    statements: (s, r) => [
      ...sendCommand(s, r.documentArns.restartServices),
      readPolicies(r),
      // At most once per attempt: the attempt is written into the incident before the restart.
      readIncidents(r),
      writeIncidents(r),
    ],
  },
  {
    name: 'cleanup',
    placeholder: 'CleanupFunctionArn',
    id: 'Cleanup',
    description: 'autoheal: free disk space on the host through the RestartServices document (Cleanup=true)',
    unscoped: ['ssm:GetCommandInvocation', 'ssm:ListCommandInvocations'],
    statements: (s, r) => [
      ...sendCommand(s, r.documentArns.restartServices),
      readPolicies(r),
      // At most once per attempt: the attempt is written into the incident before the restart.
      readIncidents(r),
      writeIncidents(r),
    ],
  },
  {
    name: 'reboot',
    placeholder: 'RebootFunctionArn',
    id: 'Reboot',
    description: 'autoheal: reboot a managed instance',
    unscoped: ['ec2:DescribeInstances', 'ec2:DescribeInstanceStatus'],
    statements: (s, r) => [
      onManagedInstances(s, 'ec2:RebootInstances'),
      // At most once per attempt: the attempt is written into the incident before the reboot.
      readIncidents(r),
      writeIncidents(r),
    ],
  },
  {
    name: 'replace',
    placeholder: 'ReplaceFunctionArn',
    id: 'Replace',
    description: 'autoheal: mark unhealthy or terminate in its Auto Scaling group so the group replaces it',
    unscoped: ['autoscaling:DescribeAutoScalingInstances', 'autoscaling:DescribeAutoScalingGroups'],
    statements: (s, r) => [
      onManagedGroups(s, 'autoscaling:SetInstanceHealth', 'autoscaling:TerminateInstanceInAutoScalingGroup'),
      // At most once per attempt: the attempt is written into the incident before the termination.
      readIncidents(r),
      writeIncidents(r),
    ],
  },
  {
    name: 'quarantine',
    placeholder: 'QuarantineFunctionArn',
    id: 'Quarantine',
    description: 'autoheal: keep the instance out of service (deregistered, in Standby) for investigation',
    unscoped: ['autoscaling:DescribeAutoScalingInstances'],
    statements: (s, r) => [
      onTargetGroups(s, r, 'elasticloadbalancing:DeregisterTargets'),
      onManagedGroups(s, 'autoscaling:EnterStandby'),
    ],
  },
  {
    name: 'verify',
    placeholder: 'VerifyFunctionArn',
    id: 'Verify',
    description: 'autoheal: the VerifyHealth document on the host, or the replacement target health',
    unscoped: [
      'ssm:GetCommandInvocation',
      'ssm:ListCommandInvocations',
      'ec2:DescribeInstanceStatus',
      'elasticloadbalancing:DescribeTargetHealth',
      'autoscaling:DescribeAutoScalingGroups',
    ],
    statements: (s, r) => [
      ...sendCommand(s, r.documentArns.verifyHealth),
    ],
  },
  {
    name: 'restore',
    placeholder: 'RestoreFunctionArn',
    id: 'Restore',
    description: 'autoheal: register the verified target again or exit Standby',
    unscoped: ['autoscaling:DescribeAutoScalingInstances'],
    statements: (s, r) => [
      onTargetGroups(s, r, 'elasticloadbalancing:RegisterTargets'),
      onManagedGroups(s, 'autoscaling:ExitStandby'),
    ],
  },
  {
    name: 'record',
    placeholder: 'RecordFunctionArn',
    id: 'Record',
    description: 'autoheal: write the incident (diagnosis, decision, steps, MTTR) to DynamoDB',
    unscoped: [],
    statements: (_s, r) => [readIncidents(r), writeIncidents(r)],
  },
  {
    name: 'notify',
    placeholder: 'NotifyFunctionArn',
    id: 'Notify',
    description: 'autoheal: SNS, Slack and Teams notifications and approval requests',
    unscoped: [],
    statements: (_s, r) => [
      // The summary carries each incident's record.
      readIncidents(r),
      new iam.PolicyStatement({ actions: ['sns:Publish'], resources: [r.topic.topicArn] }),
      // Publishing to a KMS-encrypted topic (no GenerateDataKey* wildcard).
      new iam.PolicyStatement({ actions: ['kms:GenerateDataKey', 'kms:Decrypt'], resources: [r.topicKey.keyArn] }),
      // Webhook URLs: exactly the configured parameters (no kms:Decrypt: SecureString parameters
      // under the AWS-managed key alias/aws/ssm are decrypted through SSM by its key policy).
      ...(r.webhookParameterArns.length > 0
        ? [new iam.PolicyStatement({ actions: ['ssm:GetParameter'], resources: r.webhookParameterArns })]
        : []),
    ],
    // GetParameter on /aws/reference/secretsmanager/<name> also needs GetSecretValue on the secret.
    grants: (g, r) => {
      for (const s of r.secrets) s.grantRead(g);
    },
  },
];

/** The trigger is not a state: it turns schedules and alarms into executions. */
export const TRIGGER_NAME = 'trigger';
