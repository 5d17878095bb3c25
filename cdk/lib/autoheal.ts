/**
 * The `AutoHeal` construct: everything autoheal needs on AWS (DESIGN.md §7).
 *
 * statemachine/autoheal.asl.json is read as it is and its `${...FunctionArn}` placeholders are
 * substituted with the task Lambdas (or, in activity mode, Step Functions activities). Each task
 * Lambda is a cargo-lambda binary `<lambdaCodeDir>/<name>/bootstrap` with exactly the permissions
 * of its task (lib/tasks.ts).
 */
import { existsSync, readFileSync } from 'fs';
import * as path from 'path';
import { Annotations, ArnFormat, CfnElement, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { parse as parseYaml } from 'yaml';
import { placeholdersIn, readDefinition, taskTimeouts } from './asl';
import {
  INCIDENTS_INDEX,
  TASKS,
  TRIGGER_NAME,
  TargetGroupScope,
  TaskResources,
  UNSCOPABLE_ACTIONS,
  conditionedWildcardAcknowledgments,
  parameterArn,
  secretReferenceParameterName,
  unscopedStatement,
} from './tasks';

/** The repository root: cdk/lib/.. /.. */
export const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const DEFAULT_DEFINITION_FILE = path.join(REPO_ROOT, 'statemachine', 'autoheal.asl.json');
export const DEFAULT_LAMBDA_CODE_DIR = path.join(REPO_ROOT, 'target', 'lambda');
export const DEFAULT_SSM_DIR = path.join(REPO_ROOT, 'ssm');

/** Activities are named `autoheal-<task>` (e.g. `autoheal-detect`), so one stack per account and region. */
export const ACTIVITY_PREFIX = 'autoheal-';

/** Alarms this stack creates on target groups are named `autoheal-<tg-name>-UnHealthyHostCount`. */
export const ALARM_PREFIX = 'autoheal-';

/** Lambda keeps all environment variables of a function within 4 KB. */
const MAX_POLICY_JSON = 3072;
/** Seconds a task Lambda may run beyond the state's TimeoutSeconds. */
const TIMEOUT_MARGIN_S = 30;

/** The three SSM Command documents: file in ssm/, document name, environment variable. */
export const SSM_DOCUMENTS = [
  { key: 'diagnostics', file: 'diagnostics.yml', name: 'autoheal-Diagnostics', env: 'AUTOHEAL_DIAGNOSTICS_DOCUMENT' },
  {
    key: 'restartServices',
    file: 'restart_services.yml',
    name: 'autoheal-RestartServices',
    env: 'AUTOHEAL_RESTART_SERVICES_DOCUMENT',
  },
  { key: 'verifyHealth', file: 'verify_health.yml', name: 'autoheal-VerifyHealth', env: 'AUTOHEAL_VERIFY_HEALTH_DOCUMENT' },
] as const;

export interface TargetGroupTag {
  readonly key: string;
  readonly value: string;
}

export interface AutoHealNotifications {
  /** Email addresses subscribed to the SNS topic (each must confirm the subscription). */
  readonly emails?: string[];
  /** Secrets Manager secret holding the Slack incoming-webhook URL (only its name reaches the Lambda). */
  readonly slackWebhookSecretName?: string;
  /** Secrets Manager secret holding the Teams incoming-webhook URL (only its name reaches the Lambda). */
  readonly teamsWebhookSecretName?: string;
  /**
   * Instead of a secret: an SSM SecureString parameter holding the Slack webhook URL (only its name
   * reaches the Lambda). Encrypt it with the AWS-managed key `alias/aws/ssm`, or grant notify's role
   * kms:Decrypt on your own key.
   */
  readonly slackWebhookParameterName?: string;
  /** Instead of a secret: an SSM SecureString parameter holding the Teams webhook URL. */
  readonly teamsWebhookParameterName?: string;
}

export interface AutoHealProps {
  /** Target groups to heal. Give this or `targetGroupTag`. */
  readonly targetGroupArns?: string[];
  /**
   * Heal every target group carrying this tag. Give this or `targetGroupArns`. Tag-selected groups
   * get no CloudWatch alarms (their names are not known at synth time): they are checked on the
   * schedule only.
   */
  readonly targetGroupTag?: TargetGroupTag;
  /**
   * The load balancer of each target group in `targetGroupArns`, as CloudWatch names it
   * (`app/<name>/<id>`, or `net/<name>/<id>`): UnHealthyHostCount is only published per target
   * group *and* load balancer, so a target group missing here gets no alarm (schedule only).
   */
  readonly loadBalancerFullNames?: Record<string, string>;
  /** How often the trigger runs a detection for every target group. @default 5 minutes */
  readonly schedule?: Duration;
  /** The autoheal policy (docs/policy.md), given to the trigger as `AUTOHEAL_POLICY`. @default {} */
  readonly policy?: Record<string, unknown>;
  /** Sets `dry_run` in the policy (wins over the policy's own value). */
  readonly dryRun?: boolean;
  readonly notifications?: AutoHealNotifications;
  /** @default 'arm64' */
  readonly architecture?: 'arm64' | 'x86_64';
  /** @default ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /**
   * Where cargo-lambda wrote `<name>/bootstrap` for every function. Tests pass a temporary
   * directory of dummy `bootstrap` files.
   * @default <repo>/target/lambda
   */
  readonly lambdaCodeDir?: string;
  /**
   * `lambda`: one Lambda per task. `activity`: one Step Functions activity per task, served by
   * `autoheal worker --activity` (the notify task stays a Lambda: the approval state invokes it
   * with `lambda:invoke.waitForTaskToken`). @default 'lambda'
   */
  readonly taskMode?: 'lambda' | 'activity';
  /** @default <repo>/statemachine/autoheal.asl.json */
  readonly definitionFile?: string;
  /** Folder with diagnostics.yml, restart_services.yml and verify_health.yml. @default <repo>/ssm */
  readonly ssmDir?: string;
}

/** `arn:aws:elasticloadbalancing:<region>:<account>:targetgroup/<name>/<id>` */
const TARGET_GROUP_ARN =
  /^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:(targetgroup\/([A-Za-z0-9-]{1,32})\/[0-9a-f]{16})$/;
const LOAD_BALANCER_FULL_NAME = /^(app|net)\/[A-Za-z0-9-]{1,32}\/[0-9a-f]{16}$/;

export interface ParsedTargetGroup {
  readonly arn: string;
  /** The CloudWatch `TargetGroup` dimension: `targetgroup/<name>/<id>`. */
  readonly dimension: string;
  readonly name: string;
}

/** A Parameter Store name: letters, digits, `_.-/`; a hierarchical name starts with `/`. */
const PARAMETER_NAME = /^(\/[A-Za-z0-9_.-]+)+$|^[A-Za-z0-9_.-]+$/;

export function parseTargetGroupArn(arn: string): ParsedTargetGroup {
  const m = TARGET_GROUP_ARN.exec(arn);
  if (!m) {
    throw new Error(
      `AutoHeal: targetGroupArns: "${arn}" is not a target group ARN ` +
        '(arn:aws:elasticloadbalancing:<region>:<account>:targetgroup/<name>/<16 hex digits>)',
    );
  }
  return { arn, dimension: m[1], name: m[2] };
}

/** The policy the trigger passes to every execution: `policy` with `dryRun` merged in. */
export function effectivePolicy(props: Pick<AutoHealProps, 'policy' | 'dryRun'>): Record<string, unknown> {
  const policy = props.policy ?? {};
  if (typeof policy !== 'object' || policy === null || Array.isArray(policy)) {
    throw new Error('AutoHeal: policy must be a JSON object (docs/policy.md)');
  }
  return props.dryRun === undefined ? { ...policy } : { ...policy, dry_run: props.dryRun };
}

export class AutoHeal extends Construct {
  public readonly stateMachine: sfn.StateMachine;
  public readonly incidentsTable: dynamodb.Table;
  public readonly leasesTable: dynamodb.Table;
  public readonly policiesTable: dynamodb.Table;
  public readonly topic: sns.Topic;
  public readonly topicKey: kms.Key;
  public readonly triggerFunction: lambda.Function;
  /** Task Lambdas by task name (in activity mode: only notify). */
  public readonly functions: Record<string, lambda.Function> = {};
  /** Activities by task name (activity mode only). */
  public readonly activities: Record<string, sfn.Activity> = {};
  public readonly documents: Record<string, ssm.CfnDocument> = {};
  /** The `definitionSubstitutions` given to the state machine. */
  public readonly substitutions: Record<string, string> = {};
  /** Target-group alarms, by target group ARN. */
  public readonly targetGroupAlarms: Record<string, cloudwatch.Alarm> = {};
  /** Alarms on autoheal itself (they notify the SNS topic). */
  public readonly healerAlarms: cloudwatch.Alarm[] = [];
  public readonly dashboard: cloudwatch.Dashboard;
  /** Attach to people or roles that answer approval requests (`autoheal approve` / `deny`). */
  public readonly approverPolicy: iam.ManagedPolicy;
  /** Activity mode: attach to the role that runs `autoheal worker --activity`. */
  public readonly workerPolicy?: iam.ManagedPolicy;
  /**
   * Activity mode: `detect=<arn>,lease=<arn>,…` in task order, as `autoheal worker --activity`
   * takes them (one `--activity` per entry).
   */
  public readonly activityArnList?: string;
  /** Attach to people or roles that run the `autoheal` CLI against this stack. */
  public readonly operatorPolicy: iam.ManagedPolicy;

  private readonly architecture: lambda.Architecture;
  private readonly logRetention: logs.RetentionDays;
  private readonly lambdaCodeDir: string;

  constructor(scope: Construct, id: string, props: AutoHealProps) {
    super(scope, id);

    // ---- props -------------------------------------------------------------------------------
    const hasArns = props.targetGroupArns !== undefined && props.targetGroupArns.length > 0;
    const hasTag = props.targetGroupTag !== undefined;
    if (!hasArns && !hasTag) {
      throw new Error(
        'AutoHeal: give the target groups to heal: targetGroupArns (a non-empty list of target group ARNs) ' +
          'or targetGroupTag ({ key, value } carried by the target groups)',
      );
    }
    if (hasArns && hasTag) {
      throw new Error('AutoHeal: give targetGroupArns or targetGroupTag, not both');
    }
    let targetGroups: TargetGroupScope;
    const parsedGroups: ParsedTargetGroup[] = [];
    if (hasArns) {
      for (const arn of props.targetGroupArns!) parsedGroups.push(parseTargetGroupArn(arn));
      const dupes = parsedGroups.filter((g, i) => parsedGroups.findIndex((h) => h.name === g.name) !== i);
      if (dupes.length > 0) {
        throw new Error(`AutoHeal: targetGroupArns lists the target group "${dupes[0].name}" twice`);
      }
      targetGroups = { kind: 'arns', arns: parsedGroups.map((g) => g.arn) };
    } else {
      const { key, value } = props.targetGroupTag!;
      if (!key || value === undefined || value === null) {
        throw new Error('AutoHeal: targetGroupTag needs both key and value, e.g. { key: "autoheal", value: "enabled" }');
      }
      targetGroups = { kind: 'tag', key, value };
    }
    for (const tg of Object.keys(props.loadBalancerFullNames ?? {})) {
      if (!parsedGroups.some((g) => g.arn === tg)) {
        throw new Error(`AutoHeal: loadBalancerFullNames names ${tg}, which is not in targetGroupArns`);
      }
      const lb = props.loadBalancerFullNames![tg];
      if (!LOAD_BALANCER_FULL_NAME.test(lb)) {
        throw new Error(
          `AutoHeal: loadBalancerFullNames: "${lb}" is not a load balancer full name (app/<name>/<16 hex digits>)`,
        );
      }
    }

    const schedule = props.schedule ?? Duration.minutes(5);
    const scheduleMinutes = schedule.toMinutes({ integral: false });
    if (!Number.isInteger(scheduleMinutes) || scheduleMinutes < 1) {
      throw new Error(`AutoHeal: schedule must be a whole number of minutes, at least 1 (got ${schedule.toHumanString()})`);
    }

    const policyJson = JSON.stringify(effectivePolicy(props));
    if (policyJson.length > MAX_POLICY_JSON) {
      throw new Error(
        `AutoHeal: policy is ${policyJson.length} characters of JSON; Lambda environment variables hold at most ` +
          `4 KB, so keep it under ${MAX_POLICY_JSON} (per-instance entries belong in the policies table)`,
      );
    }

    const architecture = props.architecture ?? 'arm64';
    if (architecture !== 'arm64' && architecture !== 'x86_64') {
      throw new Error(`AutoHeal: architecture must be "arm64" or "x86_64" (got "${architecture}")`);
    }
    this.architecture = architecture === 'arm64' ? lambda.Architecture.ARM_64 : lambda.Architecture.X86_64;
    const taskMode = props.taskMode ?? 'lambda';
    if (taskMode !== 'lambda' && taskMode !== 'activity') {
      throw new Error(`AutoHeal: taskMode must be "lambda" or "activity" (got "${taskMode}")`);
    }
    this.logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    this.lambdaCodeDir = path.resolve(props.lambdaCodeDir ?? DEFAULT_LAMBDA_CODE_DIR);

    const emails = props.notifications?.emails ?? [];
    for (const e of emails) {
      if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(e)) {
        throw new Error(`AutoHeal: notifications.emails: "${e}" is not an email address`);
      }
    }

    const definitionFile = props.definitionFile ?? DEFAULT_DEFINITION_FILE;
    const definition = readDefinition(definitionFile);
    const timeouts = taskTimeouts(definition);

    // ---- notifications -----------------------------------------------------------------------
    this.topicKey = new kms.Key(this, 'TopicKey', {
      description: 'autoheal: encrypts the notification topic',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // CloudWatch alarm actions publish to the encrypted topic.
    this.topicKey.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
        conditions: { StringEquals: { 'aws:SourceAccount': Stack.of(this).account } },
      }),
    );
    this.topic = new sns.Topic(this, 'Topic', {
      displayName: 'autoheal',
      masterKey: this.topicKey,
      enforceSSL: true,
    });
    for (const email of emails) {
      this.topic.addSubscription(new subscriptions.EmailSubscription(email));
    }
    // Webhook URLs: a Secrets Manager secret, which notify reads with GetParameter on Parameter
    // Store's reference `/aws/reference/secretsmanager/<name>` (so it needs GetSecretValue too), or
    // an SSM SecureString parameter.
    const secrets: secretsmanager.ISecret[] = [];
    const secretEnv: Record<string, string> = {};
    const webhookParameterArns: string[] = [];
    const webhooks = [
      {
        channel: 'slack',
        id: 'SlackWebhook',
        secretName: props.notifications?.slackWebhookSecretName,
        parameterName: props.notifications?.slackWebhookParameterName,
        secretEnv: 'AUTOHEAL_SLACK_WEBHOOK_SECRET',
        parameterEnv: 'AUTOHEAL_SLACK_WEBHOOK_PARAMETER',
      },
      {
        channel: 'teams',
        id: 'TeamsWebhook',
        secretName: props.notifications?.teamsWebhookSecretName,
        parameterName: props.notifications?.teamsWebhookParameterName,
        secretEnv: 'AUTOHEAL_TEAMS_WEBHOOK_SECRET',
        parameterEnv: 'AUTOHEAL_TEAMS_WEBHOOK_PARAMETER',
      },
    ];
    for (const w of webhooks) {
      if (w.secretName && w.parameterName) {
        throw new Error(
          `AutoHeal: notifications: give ${w.channel}WebhookSecretName or ${w.channel}WebhookParameterName, not both`,
        );
      }
      if (w.secretName) {
        const s = secretsmanager.Secret.fromSecretNameV2(this, w.id, w.secretName);
        secrets.push(s);
        secretEnv[w.secretEnv] = s.secretName;
        webhookParameterArns.push(parameterArn(this, secretReferenceParameterName(w.secretName)));
      }
      if (w.parameterName) {
        const name = w.parameterName;
        if (!PARAMETER_NAME.test(name) || name.length > 1011) {
          throw new Error(
            `AutoHeal: notifications.${w.channel}WebhookParameterName: "${name}" is not an SSM parameter name ` +
              '(letters, digits and _.-, with / between levels of a name that starts with /)',
          );
        }
        if (name.startsWith('/aws/reference/')) {
          throw new Error(
            `AutoHeal: notifications.${w.channel}WebhookParameterName: for a Secrets Manager secret give ` +
              `${w.channel}WebhookSecretName (the secret's name) instead`,
          );
        }
        secretEnv[w.parameterEnv] = name;
        webhookParameterArns.push(parameterArn(this, name));
      }
    }

    // ---- tables ------------------------------------------------------------------------------
    const table = (tid: string, partitionKey: string): dynamodb.Table =>
      new dynamodb.Table(this, tid, {
        partitionKey: { name: partitionKey, type: dynamodb.AttributeType.STRING },
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        timeToLiveAttribute: 'expires_at',
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
        encryption: dynamodb.TableEncryption.AWS_MANAGED,
        removalPolicy: RemovalPolicy.RETAIN,
      });
    this.incidentsTable = table('IncidentsTable', 'incident_id');
    this.incidentsTable.addGlobalSecondaryIndex({
      indexName: INCIDENTS_INDEX,
      partitionKey: { name: 'instance_id', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'detected_at', type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.ALL,
    });
    this.leasesTable = table('LeasesTable', 'instance_id');
    this.policiesTable = table('PoliciesTable', 'instance_id');

    // ---- SSM documents -----------------------------------------------------------------------
    const ssmDir = path.resolve(props.ssmDir ?? DEFAULT_SSM_DIR);
    const documentArns: Record<string, string> = {};
    const documentEnv: Record<string, string> = {};
    for (const d of SSM_DOCUMENTS) {
      const doc = new ssm.CfnDocument(this, `${d.name.replace('autoheal-', '')}Document`, {
        name: d.name,
        documentType: 'Command',
        documentFormat: 'YAML',
        updateMethod: 'NewVersion',
        content: readCommandDocument(path.join(ssmDir, d.file)),
      });
      this.documents[d.key] = doc;
      documentArns[d.key] = Stack.of(this).formatArn({ service: 'ssm', resource: 'document', resourceName: d.name });
      documentEnv[d.env] = doc.ref;
    }

    // ---- what every function is told ---------------------------------------------------------
    const commonEnv: Record<string, string> = {
      POWERTOOLS_SERVICE_NAME: 'autoheal',
      POWERTOOLS_METRICS_NAMESPACE: 'autoheal',
      AUTOHEAL_INCIDENTS_TABLE: this.incidentsTable.tableName,
      AUTOHEAL_INCIDENTS_INDEX: INCIDENTS_INDEX,
      AUTOHEAL_LEASES_TABLE: this.leasesTable.tableName,
      AUTOHEAL_POLICIES_TABLE: this.policiesTable.tableName,
      AUTOHEAL_TOPIC_ARN: this.topic.topicArn,
      ...documentEnv,
      ...secretEnv,
    };

    const resources: TaskResources = {
      incidents: this.incidentsTable,
      leases: this.leasesTable,
      policies: this.policiesTable,
      topic: this.topic,
      topicKey: this.topicKey,
      documentArns: documentArns as TaskResources['documentArns'],
      targetGroups,
      secrets,
      webhookParameterArns,
    };

    // ---- tasks -------------------------------------------------------------------------------
    const taskStatements: iam.PolicyStatement[] = [];
    const workerUnscoped = new Set<string>();
    for (const task of TASKS) {
      const timeoutS = (timeouts.get(task.placeholder) ?? 60) + TIMEOUT_MARGIN_S;
      const useLambda = taskMode === 'lambda' || task.name === 'notify';
      if (useLambda) {
        const fn = this.makeFunction(
          task.id,
          task.name,
          task.description,
          Duration.seconds(Math.min(timeoutS, 900)),
          { ...commonEnv, AUTOHEAL_TASK: task.name },
          task.unscoped,
        );
        if (task.unscoped.length > 0) fn.addToRolePolicy(unscopedStatement(task.unscoped));
        const statements = task.statements(this, resources);
        for (const st of statements) fn.addToRolePolicy(st);
        for (const ack of conditionedWildcardAcknowledgments(this, statements)) {
          Validations.of(fn.role!).acknowledge(ack);
        }
        task.grants?.(fn, resources);
        this.functions[task.name] = fn;
        this.substitutions[task.placeholder] = fn.functionArn;
      } else {
        // Grants go to a principal; a worker's permissions are statements in WorkerPolicy.
        if (task.grants) throw new Error(`autoheal: task ${task.name} has grants and cannot run as an activity`);
        const activity = new sfn.Activity(this, `${task.id}Activity`, { activityName: `${ACTIVITY_PREFIX}${task.name}` });
        this.activities[task.name] = activity;
        this.substitutions[task.placeholder] = activity.activityArn;
        taskStatements.push(...task.statements(this, resources));
        task.unscoped.forEach((a) => workerUnscoped.add(a));
      }
    }

    // Every placeholder is filled, and every substitution is used.
    const used = placeholdersIn(definition);
    const missing = used.filter((p) => !(p in this.substitutions));
    const unused = Object.keys(this.substitutions).filter((p) => !used.includes(p));
    if (missing.length > 0 || unused.length > 0) {
      throw new Error(
        `AutoHeal: ${definitionFile} and lib/tasks.ts disagree: ` +
          `${missing.length ? `no task for ${missing.join(', ')}` : ''}` +
          `${missing.length && unused.length ? '; ' : ''}` +
          `${unused.length ? `not in the definition: ${unused.join(', ')}` : ''}`,
      );
    }

    // ---- state machine -----------------------------------------------------------------------
    const stateMachineLogs = new logs.LogGroup(this, 'StateMachineLogs', {
      logGroupName: `/aws/vendedlogs/states/${Stack.of(this).stackName}-autoheal`,
      retention: this.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      definitionBody: sfn.DefinitionBody.fromString(definition),
      definitionSubstitutions: this.substitutions,
      stateMachineType: sfn.StateMachineType.STANDARD,
      logs: { destination: stateMachineLogs, level: sfn.LogLevel.ALL, includeExecutionData: true },
      tracingEnabled: true,
    });
    // Exactly the task functions, unqualified (the definition invokes $LATEST).
    this.stateMachine.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['lambda:InvokeFunction'],
        resources: Object.values(this.functions).map((f) => f.functionArn),
      }),
    );

    this.approverPolicy = new iam.ManagedPolicy(this, 'ApproverPolicy', {
      description: 'autoheal: answer approval requests (autoheal approve / deny) of this state machine only',
      statements: [this.taskResponseStatement([this.stateMachine.stateMachineArn])],
    });

    // Operators: approvals, starting and redriving executions, reading them and the incidents.
    const executionArns = Stack.of(this).formatArn({
      service: 'states',
      resource: 'execution',
      resourceName: `${this.stateMachine.stateMachineName}:*`,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    this.operatorPolicy = new iam.ManagedPolicy(this, 'OperatorPolicy', {
      description: 'autoheal: run the autoheal CLI against this stack (approve, start, redrive, inspect, read incidents)',
      statements: [
        new iam.PolicyStatement({
          actions: ['states:StartExecution', 'states:SendTaskSuccess', 'states:SendTaskFailure'],
          resources: [this.stateMachine.stateMachineArn],
        }),
        new iam.PolicyStatement({
          actions: ['states:RedriveExecution', 'states:DescribeExecution', 'states:GetExecutionHistory'],
          resources: [executionArns],
        }),
        new iam.PolicyStatement({
          actions: ['dynamodb:Query', 'dynamodb:GetItem', 'dynamodb:Scan'],
          resources: [this.incidentsTable.tableArn, `${this.incidentsTable.tableArn}/index/${INCIDENTS_INDEX}`],
        }),
      ],
    });
    const machineLogicalId = Stack.of(this).getLogicalId(this.stateMachine.node.defaultChild as CfnElement);
    Validations.of(this.operatorPolicy).acknowledge({
      id:
        'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:' +
        `execution:<${machineLogicalId}.Name>:*]`,
      reason:
        'IAM5: executions are created at run time, so their ARN ends in a wildcard; it is narrowed to this ' +
        'state machine (execution:<its name>:*) for states:RedriveExecution, DescribeExecution and GetExecutionHistory',
    });

    if (taskMode === 'activity') {
      const activityArns = Object.values(this.activities).map((a) => a.activityArn);
      this.activityArnList = TASKS.filter((t) => this.activities[t.name])
        .map((t) => `${t.name}=${this.activities[t.name].activityArn}`)
        .join(',');
      this.workerPolicy = new iam.ManagedPolicy(this, 'WorkerPolicy', {
        description: 'autoheal: run the tasks of this state machine with `autoheal worker --activity`',
        statements: [
          // Activity tokens only: a worker cannot answer the approval requests of the state machine.
          new iam.PolicyStatement({
            actions: ['states:GetActivityTask', 'states:SendTaskSuccess', 'states:SendTaskFailure', 'states:SendTaskHeartbeat'],
            resources: activityArns,
          }),
          unscopedStatement([...workerUnscoped].sort()),
          ...taskStatements,
        ],
      });
      Validations.of(this.workerPolicy).acknowledge({
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason: unscopedReason([...workerUnscoped]),
      });
      for (const ack of conditionedWildcardAcknowledgments(this, taskStatements)) {
        Validations.of(this.workerPolicy).acknowledge(ack);
      }
    }

    // ---- trigger -----------------------------------------------------------------------------
    const triggerEnv: Record<string, string> = {
      ...commonEnv,
      AUTOHEAL_TASK: TRIGGER_NAME,
      AUTOHEAL_STATE_MACHINE_ARN: this.stateMachine.stateMachineArn,
      AUTOHEAL_POLICY: policyJson,
      AUTOHEAL_ALARM_PREFIX: ALARM_PREFIX,
    };
    if (targetGroups.kind === 'arns') {
      triggerEnv.AUTOHEAL_TARGET_GROUP_ARNS = targetGroups.arns.join(',');
    } else {
      triggerEnv.AUTOHEAL_TARGET_GROUP_TAG = `${targetGroups.key}=${targetGroups.value}`;
    }
    // Tag mode: the trigger finds the tagged target groups itself.
    const triggerUnscoped =
      targetGroups.kind === 'tag' ? ['elasticloadbalancing:DescribeTargetGroups', 'elasticloadbalancing:DescribeTags'] : [];
    this.triggerFunction = this.makeFunction(
      'Trigger',
      TRIGGER_NAME,
      'autoheal: turns the schedule and target-group alarms into state machine executions',
      Duration.seconds(60),
      triggerEnv,
      triggerUnscoped,
    );
    this.stateMachine.grantStartExecution(this.triggerFunction);
    if (triggerUnscoped.length > 0) this.triggerFunction.addToRolePolicy(unscopedStatement(triggerUnscoped));

    const ruleTarget = new targets.LambdaFunction(this.triggerFunction, {
      retryAttempts: 2,
      maxEventAge: Duration.hours(1),
    });
    new events.Rule(this, 'ScheduleRule', {
      description: `autoheal: detection for every target group every ${scheduleMinutes} min`,
      schedule: events.Schedule.rate(schedule),
      targets: [ruleTarget],
    });

    // ---- target-group alarms -----------------------------------------------------------------
    for (const g of parsedGroups) {
      const lb = props.loadBalancerFullNames?.[g.arn];
      if (!lb) {
        Annotations.of(this).addWarningV2(
          'autoheal:no-alarm',
          `No alarm for ${g.arn}: loadBalancerFullNames has no entry for it (UnHealthyHostCount needs the ` +
            'LoadBalancer dimension). It is healed on the schedule only.',
        );
        continue;
      }
      const alarm = new cloudwatch.Alarm(this, `UnHealthyHosts-${g.name}`, {
        alarmName: alarmName(g),
        alarmDescription: `autoheal: unhealthy targets in ${g.arn}; its state changes start a detection`,
        metric: targetGroupMetric('UnHealthyHostCount', g, lb),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 2,
        datapointsToAlarm: 2,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      this.targetGroupAlarms[g.arn] = alarm;
    }
    const alarmNames = parsedGroups.filter((g) => this.targetGroupAlarms[g.arn]).map((g) => alarmName(g));
    if (alarmNames.length > 0) {
      new events.Rule(this, 'AlarmRule', {
        description: 'autoheal: a target-group alarm of this stack went into ALARM',
        eventPattern: {
          source: ['aws.cloudwatch'],
          detailType: ['CloudWatch Alarm State Change'],
          detail: {
            alarmName: events.Match.prefix(ALARM_PREFIX),
            state: { value: ['ALARM'] },
          },
          // Exactly the alarms above (all named autoheal-…), not those of another autoheal stack.
          resources: alarmNames.map((n) =>
            Stack.of(this).formatArn({
              service: 'cloudwatch',
              resource: 'alarm',
              resourceName: n,
              arnFormat: ArnFormat.COLON_RESOURCE_NAME,
            }),
          ),
        },
        targets: [ruleTarget],
      });
    }

    // ---- alarms on the healer ----------------------------------------------------------------
    const alarmAction = new cwActions.SnsAction(this.topic);
    const healerAlarm = (aid: string, description: string, metric: cloudwatch.IMetric): cloudwatch.Alarm => {
      const a = new cloudwatch.Alarm(this, aid, {
        alarmDescription: description,
        metric,
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      a.addAlarmAction(alarmAction);
      this.healerAlarms.push(a);
      return a;
    };
    const fiveMin = { period: Duration.minutes(5), statistic: cloudwatch.Stats.SUM };
    healerAlarm('ExecutionsFailedAlarm', 'autoheal: a state machine execution failed', this.stateMachine.metricFailed(fiveMin));
    healerAlarm('ExecutionsTimedOutAlarm', 'autoheal: a state machine execution timed out', this.stateMachine.metricTimedOut(fiveMin));
    for (const [name, fn] of Object.entries({ ...this.functions, [TRIGGER_NAME]: this.triggerFunction })) {
      healerAlarm(`${camel(name)}ErrorsAlarm`, `autoheal: the ${name} Lambda returned errors`, fn.metricErrors(fiveMin));
    }
    healerAlarm('TriggerThrottlesAlarm', 'autoheal: the trigger Lambda was throttled', this.triggerFunction.metricThrottles(fiveMin));

    // ---- dashboard ---------------------------------------------------------------------------
    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', { defaultInterval: Duration.hours(3) });
    const hostWidgets: cloudwatch.IWidget[] = [];
    for (const g of parsedGroups) {
      const lb = props.loadBalancerFullNames?.[g.arn];
      hostWidgets.push(
        new cloudwatch.GraphWidget({
          title: `Hosts: ${g.name}`,
          width: 8,
          left: lb
            ? [targetGroupMetric('HealthyHostCount', g, lb, 'Healthy'), targetGroupMetric('UnHealthyHostCount', g, lb, 'Unhealthy')]
            : [search(`MetricName="HealthyHostCount" TargetGroup="${g.dimension}"`, 'Minimum', 'Healthy'),
               search(`MetricName="UnHealthyHostCount" TargetGroup="${g.dimension}"`, 'Maximum', 'Unhealthy')],
        }),
      );
    }
    if (targetGroups.kind === 'tag') {
      hostWidgets.push(
        new cloudwatch.GraphWidget({
          title: `Hosts: target groups tagged ${targetGroups.key}=${targetGroups.value} (all ALB target groups)`,
          width: 12,
          left: [search('{AWS/ApplicationELB,LoadBalancer,TargetGroup} MetricName="HealthyHostCount"', 'Minimum', '')],
          right: [search('{AWS/ApplicationELB,LoadBalancer,TargetGroup} MetricName="UnHealthyHostCount"', 'Maximum', '')],
        }),
      );
    }
    this.dashboard.addWidgets(
      new cloudwatch.TextWidget({
        markdown: '# autoheal\nTarget health, what autoheal did, and how autoheal itself is doing.',
        width: 24,
        height: 2,
      }),
    );
    this.dashboard.addWidgets(...hostWidgets);
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Autoheal actions',
        width: 8,
        left: [search('Namespace="autoheal" MetricName="Actions"', 'Sum', '', Duration.minutes(5))],
      }),
      new cloudwatch.GraphWidget({
        title: 'Incidents',
        width: 8,
        left: [search('Namespace="autoheal" MetricName="Incidents"', 'Sum', '', Duration.minutes(5))],
      }),
      new cloudwatch.GraphWidget({
        title: 'MTTR (seconds)',
        width: 8,
        left: [search('Namespace="autoheal" MetricName="MttrSeconds"', 'Average', '', Duration.minutes(5))],
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Executions',
        width: 8,
        left: [
          this.stateMachine.metricStarted(fiveMin),
          this.stateMachine.metricSucceeded(fiveMin),
          this.stateMachine.metricFailed({ ...fiveMin, label: 'ExecutionsFailed' }),
          this.stateMachine.metricTimedOut(fiveMin),
        ],
      }),
      new cloudwatch.GraphWidget({
        title: 'Lambda errors',
        width: 8,
        left: Object.entries({ ...this.functions, [TRIGGER_NAME]: this.triggerFunction }).map(([name, fn]) =>
          fn.metricErrors({ ...fiveMin, label: name }),
        ),
      }),
      new cloudwatch.AlarmStatusWidget({ title: 'Alarms on autoheal', width: 8, alarms: this.healerAlarms }),
    );

    // ---- cdk-nag acknowledgments -------------------------------------------------------------
    Validations.of(this.stateMachine).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'IAM5: Step Functions logging and X-Ray tracing: logs:CreateLogDelivery/GetLogDelivery/UpdateLogDelivery/' +
        'DeleteLogDelivery/ListLogDeliveries/PutResourcePolicy/DescribeResourcePolicies/DescribeLogGroups and ' +
        'xray:PutTraceSegments/PutTelemetryRecords/GetSamplingRules/GetSamplingTargets support no resource-level permissions',
    });
  }

  private makeFunction(
    id: string,
    name: string,
    description: string,
    timeout: Duration,
    environment: Record<string, string>,
    unscoped: string[],
  ): lambda.Function {
    const codeDir = path.join(this.lambdaCodeDir, name);
    if (!existsSync(path.join(codeDir, 'bootstrap'))) {
      throw new Error(
        `AutoHeal: no Lambda binary at ${path.join(codeDir, 'bootstrap')}: build the Lambdas first ` +
          '(`make build-lambdas`, which runs cargo-lambda), or pass lambdaCodeDir (-c lambdaCodeDir=DIR) ' +
          'pointing at a folder with <name>/bootstrap for every function',
      );
    }
    const logGroup = new logs.LogGroup(this, `${id}Logs`, {
      retention: this.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const role = new iam.Role(this, `${id}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `${description} (Lambda role)`,
    });
    logGroup.grantWrite(role);
    const fn = new lambda.Function(this, `${id}Function`, {
      description,
      runtime: lambda.Runtime.PROVIDED_AL2023,
      handler: 'bootstrap',
      code: lambda.Code.fromAsset(codeDir),
      architecture: this.architecture,
      memorySize: 256,
      timeout,
      role,
      logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      applicationLogLevelV2: lambda.ApplicationLogLevel.INFO,
      systemLogLevelV2: lambda.SystemLogLevel.WARN,
      tracing: lambda.Tracing.ACTIVE,
      environment,
    });
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: unscopedReason(['xray:PutTraceSegments', 'xray:PutTelemetryRecords', ...unscoped]),
    });
    return fn;
  }

  private taskResponseStatement(resources: string[]): iam.PolicyStatement {
    return new iam.PolicyStatement({
      actions: ['states:SendTaskSuccess', 'states:SendTaskFailure', 'states:SendTaskHeartbeat'],
      resources,
    });
  }

}

/** Why a role or policy has `Resource: *`: only actions IAM cannot scope, listed by name. */
function unscopedReason(actions: string[]): string {
  for (const a of actions) {
    if (!UNSCOPABLE_ACTIONS.includes(a)) throw new Error(`autoheal: ${a} on * is not allowed`);
  }
  return (
    `IAM5: ${[...new Set(actions)].sort().join(', ')} support no resource-level permissions ` +
    '(X-Ray tracing and read-only Describe/Get/List); every other action here is on named resources'
  );
}

function alarmName(g: ParsedTargetGroup): string {
  return `${ALARM_PREFIX}${g.name}-UnHealthyHostCount`;
}

function camel(name: string): string {
  return name.replace(/(^|_)([a-z])/g, (_m, _u, c: string) => c.toUpperCase());
}

function targetGroupMetric(metricName: string, g: ParsedTargetGroup, lb: string, label?: string): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: lb.startsWith('net/') ? 'AWS/NetworkELB' : 'AWS/ApplicationELB',
    metricName,
    dimensionsMap: { TargetGroup: g.dimension, LoadBalancer: lb },
    statistic: metricName === 'HealthyHostCount' ? cloudwatch.Stats.MINIMUM : cloudwatch.Stats.MAXIMUM,
    period: Duration.minutes(1),
    label,
  });
}

function search(query: string, stat: string, label: string, period = Duration.minutes(1)): cloudwatch.MathExpression {
  return new cloudwatch.MathExpression({
    expression: `SEARCH('${query}', '${stat}', ${period.toSeconds()})`,
    usingMetrics: {},
    label,
    period,
  });
}

/** An SSM Command document (schemaVersion 2.2) read from YAML. */
export function readCommandDocument(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(
      `AutoHeal: cannot read the SSM document ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); ` +
        'pass ssmDir (-c ssmDir=DIR) to read the documents from another folder',
    );
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new Error(`AutoHeal: ${file} is not valid YAML: ${(e as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new Error(`AutoHeal: ${file} must be a YAML mapping (an SSM Command document)`);
  }
  const d = doc as Record<string, unknown>;
  if (String(d.schemaVersion) !== '2.2') {
    throw new Error(`AutoHeal: ${file}: schemaVersion must be "2.2" for a Command document (got ${JSON.stringify(d.schemaVersion)})`);
  }
  if (!Array.isArray(d.mainSteps) || d.mainSteps.length === 0) {
    throw new Error(`AutoHeal: ${file}: a Command document needs at least one entry in mainSteps`);
  }
  return d;
}
