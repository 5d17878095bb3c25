import { Template } from 'aws-cdk-lib/assertions';
import { DESTRUCTIVE_ACTIONS, MANAGED_CONDITION, TASKS, UNSCOPABLE_ACTIONS } from '../lib/tasks';
import {
  actionsOf,
  allStatements,
  baseProps,
  executionsOf,
  functionId,
  functionStatements,
  managedPolicy,
  parameterArnOf,
  resourcesOf,
  Statement,
  synth,
  TG_ARN,
  TG_ARN_2,
} from './helpers';

const byArn = synth(baseProps({ targetGroupArns: [TG_ARN, TG_ARN_2], notifications: { slackWebhookSecretName: 'autoheal/slack' } })).template;
const byTag = synth(baseProps({ targetGroupArns: undefined, loadBalancerFullNames: undefined, targetGroupTag: { key: 'team', value: 'web' } })).template;
const activity = synth(baseProps({ taskMode: 'activity' })).template;

const configurations: Array<[string, Template]> = [
  ['target groups by ARN', byArn],
  ['target groups by tag', byTag],
  ['activity mode', activity],
];

/** A resource that is a document ARN of ours: arn:…:document/autoheal-… */
const isOurDocument = (r: unknown): boolean => JSON.stringify(r).includes(':document/autoheal-');

describe.each(configurations)('with %s', (_name, template) => {
  const statements = allStatements(template);

  test('no statement allows every action, or every action of a service', () => {
    for (const { statement } of statements) {
      for (const a of actionsOf(statement)) {
        expect(a).not.toBe('*');
        expect(a).not.toMatch(/:\*$/);
      }
    }
  });

  test('only actions without resource-level permissions are granted on *', () => {
    for (const { statement } of statements) {
      if (resourcesOf(statement).includes('*')) {
        for (const a of actionsOf(statement)) expect(UNSCOPABLE_ACTIONS).toContain(a);
      }
    }
  });

  test('every destructive action carries the autoheal:managed tag condition or names its resources', () => {
    let seen = 0;
    for (const { statement } of statements) {
      const destructive = actionsOf(statement).filter((a) => DESTRUCTIVE_ACTIONS.includes(a));
      if (destructive.length === 0) continue;
      seen += destructive.length;
      expect(resourcesOf(statement)).not.toContain('*');
      if (statement.Condition) continue; // checked in detail below
      // Without a condition the resources must be named: target groups by ARN, or our documents.
      for (const r of resourcesOf(statement)) {
        expect(typeof r === 'string' ? r.includes('*') : false).toBe(false);
      }
    }
    expect(seen).toBeGreaterThan(0);
  });

  test('reboot, terminate, set-health and standby are allowed only on resources tagged autoheal:managed=true', () => {
    const hostActions = DESTRUCTIVE_ACTIONS.filter((a) => a.startsWith('ec2:') || a.startsWith('autoscaling:'));
    for (const { statement } of statements) {
      if (actionsOf(statement).some((a) => hostActions.includes(a))) {
        expect(statement.Condition).toEqual(MANAGED_CONDITION);
      }
    }
  });

  test('ssm:SendCommand is allowed on our three documents and on managed instances only', () => {
    const send = statements.map((s) => s.statement).filter((s) => actionsOf(s).includes('ssm:SendCommand'));
    expect(send.length).toBeGreaterThan(0);
    for (const s of send) {
      expect(actionsOf(s)).toEqual(['ssm:SendCommand']);
      if (s.Condition) {
        expect(s.Condition).toEqual(MANAGED_CONDITION);
        expect(JSON.stringify(s.Resource)).toContain(':instance/*');
      } else {
        expect(resourcesOf(s).every(isOurDocument)).toBe(true);
      }
    }
  });

  test('every states: action names our state machine, its executions or our activities', () => {
    const machineId = Object.keys(template.findResources('AWS::StepFunctions::StateMachine'))[0];
    const activityIds = Object.keys(template.findResources('AWS::StepFunctions::Activity'));
    const ours = [machineId, ...activityIds].map((id) => ({ Ref: id }));
    for (const { statement } of statements) {
      const states = actionsOf(statement).filter((a) => a.startsWith('states:'));
      if (states.length === 0) continue;
      for (const r of resourcesOf(statement)) {
        expect([...ours, executionsOf(machineId)]).toContainEqual(r);
      }
      if (states.includes('states:StartExecution')) expect(resourcesOf(statement)).toEqual([{ Ref: machineId }]);
    }
  });
});

describe('target group actions', () => {
  test('register and deregister name exactly the configured target groups', () => {
    const elb = allStatements(byArn)
      .map((s) => s.statement)
      .filter((s) => actionsOf(s).some((a) => a === 'elasticloadbalancing:RegisterTargets' || a === 'elasticloadbalancing:DeregisterTargets'));
    expect(elb.length).toBe(3); // drain, quarantine, restore
    for (const s of elb) {
      expect(s.Resource).toEqual([TG_ARN, TG_ARN_2]);
      expect(s.Condition).toBeUndefined();
    }
  });

  test('with a tag, register and deregister need that tag on the target group', () => {
    const elb = allStatements(byTag)
      .map((s) => s.statement)
      .filter((s) => actionsOf(s).some((a) => /registerTargets$/i.test(a)));
    expect(elb.length).toBe(3);
    for (const s of elb) {
      expect(s.Condition).toEqual({ StringEquals: { 'aws:ResourceTag/team': 'web' } });
      expect(JSON.stringify(s.Resource)).toContain(':targetgroup/*/*');
    }
  });
});

describe('each function has only what its task needs', () => {
  const own = (name: string): Statement[] =>
    functionStatements(byArn, name).filter((s) => !actionsOf(s).every((a) => a.startsWith('logs:') || a.startsWith('xray:')));
  const actions = (name: string): string[] => own(name).flatMap(actionsOf).sort();

  test('every function may write to its own log group only', () => {
    for (const task of [...TASKS.map((t) => t.name), 'trigger']) {
      const logsStatements = functionStatements(byArn, task).filter((s) => actionsOf(s).some((a) => a.startsWith('logs:')));
      expect(logsStatements).toHaveLength(1);
      expect(logsStatements[0].Action).toEqual(['logs:CreateLogStream', 'logs:PutLogEvents']);
      expect(logsStatements[0].Resource).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/Logs/), 'Arn'] });
    }
  });

  test('decide only reads: DynamoDB, target health and instances (the handler reads all three)', () => {
    const a = actions('decide');
    expect(a).toEqual(expect.arrayContaining(['dynamodb:BatchGetItem', 'elasticloadbalancing:DescribeTargetHealth', 'ec2:DescribeInstances']));
    for (const x of a) expect(x).toMatch(/^(dynamodb:(GetItem|BatchGetItem|Query)|elasticloadbalancing:Describe\w+|ec2:Describe\w+)$/);
  });

  test('detect describes load balancers, target health and instances, and uses the incidents, policies and leases tables', () => {
    const a = actions('detect');
    expect(a).toEqual(expect.arrayContaining(['elasticloadbalancing:DescribeTargetHealth', 'ec2:DescribeInstances', 'dynamodb:BatchGetItem', 'dynamodb:Query']));
    for (const x of a) expect(x).toMatch(/^(elasticloadbalancing:Describe|ec2:Describe|dynamodb:)/);
  });

  test('the lease function touches the leases table only', () => {
    const leases = own('lease');
    expect(leases).toHaveLength(1);
    expect(leases[0].Resource).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/LeasesTable/), 'Arn'] });
  });

  test('only reboot may reboot, only replace may terminate, only drain and quarantine may enter standby', () => {
    const who = (action: string): string[] =>
      [...TASKS.map((t) => t.name), 'trigger'].filter((n) => actions(n).includes(action)).sort();
    expect(who('ec2:RebootInstances')).toEqual(['reboot']);
    expect(who('autoscaling:TerminateInstanceInAutoScalingGroup')).toEqual(['replace']);
    expect(who('autoscaling:SetInstanceHealth')).toEqual(['replace']);
    expect(who('autoscaling:EnterStandby')).toEqual(['drain', 'quarantine']);
    expect(who('autoscaling:ExitStandby')).toEqual(['restore']);
    expect(who('elasticloadbalancing:RegisterTargets')).toEqual(['restore']);
    expect(who('ssm:SendCommand')).toEqual(['cleanup', 'diagnose', 'restart_service', 'verify']);
    expect(who('states:StartExecution')).toEqual(['trigger']);
    expect(who('sns:Publish')).toEqual(['notify']);
  });

  test('each SSM task may send only its own document', () => {
    const docs = (name: string): string[] =>
      own(name)
        .filter((s) => actionsOf(s).includes('ssm:SendCommand') && !s.Condition)
        .map((s) => JSON.stringify(s.Resource).match(/document\/(autoheal-[A-Za-z]+)/)![1]);
    expect(docs('diagnose')).toEqual(['autoheal-Diagnostics']);
    expect(docs('restart_service')).toEqual(['autoheal-RestartServices']);
    expect(docs('verify')).toEqual(['autoheal-VerifyHealth']);
  });

  test('notify publishes to the topic with its key and reads the webhook secret; nobody else reads secrets', () => {
    const n = own('notify');
    expect(n).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ Action: 'sns:Publish', Resource: { Ref: expect.stringMatching(/Topic/) } }),
        expect.objectContaining({
          Action: ['kms:GenerateDataKey', 'kms:Decrypt'],
          Resource: { 'Fn::GetAtt': [expect.stringMatching(/TopicKey/), 'Arn'] },
        }),
      ]),
    );
    const secretReaders = allStatements(byArn).filter((s) => actionsOf(s.statement).includes('secretsmanager:GetSecretValue'));
    expect(secretReaders.map((s) => s.policy)).toEqual([expect.stringMatching(/NotifyRole/)]);
    expect(JSON.stringify(secretReaders[0].statement.Resource)).toContain(':secret:autoheal/slack-??????');
  });

  test('the trigger may only start executions of our machine (and, by tag, find target groups)', () => {
    expect(actions('trigger')).toEqual(['states:StartExecution']);
    const tagTrigger = functionStatements(byTag, 'trigger').flatMap(actionsOf).filter((a) => !/^(logs|xray):/.test(a));
    expect(tagTrigger.sort()).toEqual(['elasticloadbalancing:DescribeTags', 'elasticloadbalancing:DescribeTargetGroups', 'states:StartExecution']);
  });

  test('the approver policy may answer task tokens of our state machine only', () => {
    const machineId = Object.keys(byArn.findResources('AWS::StepFunctions::StateMachine'))[0];
    byArn.hasResourceProperties('AWS::IAM::ManagedPolicy', {
      PolicyDocument: {
        Statement: [
          {
            Effect: 'Allow',
            Action: ['states:SendTaskSuccess', 'states:SendTaskFailure', 'states:SendTaskHeartbeat'],
            Resource: { Ref: machineId },
          },
        ],
      },
    });
    expect(functionId(byArn, 'notify')).toBeDefined();
  });
});

describe.each([
  ['lambda mode', byArn],
  ['activity mode', activity],
])('the operator policy (%s)', (_name, template) => {
  const { statements } = managedPolicy(template, 'OperatorPolicy');
  const machineId = Object.keys(template.findResources('AWS::StepFunctions::StateMachine'))[0];
  const tableArn = { 'Fn::GetAtt': [expect.stringMatching(/^AutoHealIncidentsTable/), 'Arn'] };
  const byAction = (action: string): Statement[] => statements.filter((s) => actionsOf(s).includes(action));

  test('answers approvals and starts executions of our state machine only', () => {
    for (const a of ['states:SendTaskSuccess', 'states:SendTaskFailure', 'states:StartExecution']) {
      expect(byAction(a)).toHaveLength(1);
      expect(resourcesOf(byAction(a)[0])).toEqual([{ Ref: machineId }]);
    }
  });

  test('redrives and reads the executions of our state machine only', () => {
    for (const a of ['states:RedriveExecution', 'states:DescribeExecution', 'states:GetExecutionHistory']) {
      expect(byAction(a)).toHaveLength(1);
      expect(resourcesOf(byAction(a)[0])).toEqual([executionsOf(machineId)]);
    }
  });

  test('reads the incidents table and its index only', () => {
    for (const a of ['dynamodb:Query', 'dynamodb:GetItem', 'dynamodb:Scan']) {
      expect(byAction(a)).toHaveLength(1);
      expect(resourcesOf(byAction(a)[0])).toEqual([tableArn, { 'Fn::Join': ['', [tableArn, '/index/InstanceId-Timestamp']] }]);
    }
  });

  test('has exactly those actions, none on *, and no condition to get wrong', () => {
    expect(statements.flatMap(actionsOf).sort()).toEqual(
      [
        'dynamodb:GetItem',
        'dynamodb:Query',
        'dynamodb:Scan',
        'states:DescribeExecution',
        'states:GetExecutionHistory',
        'states:RedriveExecution',
        'states:SendTaskFailure',
        'states:SendTaskSuccess',
        'states:StartExecution',
      ].sort(),
    );
    for (const s of statements) {
      expect(resourcesOf(s)).not.toContain('*');
      expect(s.Condition).toBeUndefined();
    }
  });

  test('its ARN is the OperatorPolicyArn output', () => {
    expect(template.toJSON().Outputs.OperatorPolicyArn.Value).toEqual({ Ref: managedPolicy(template, 'OperatorPolicy').id });
  });
});

describe('webhook URLs from Parameter Store', () => {
  const getParameter = (template: Template) =>
    allStatements(template).filter((s) => actionsOf(s.statement).some((a) => a.startsWith('ssm:GetParameter')));

  test('with a secret, notify may GetParameter exactly its /aws/reference/secretsmanager/ parameter', () => {
    const found = getParameter(byArn);
    expect(found.map((s) => s.policy)).toEqual([expect.stringMatching(/NotifyRole/)]);
    expect(found[0].statement.Action).toBe('ssm:GetParameter');
    expect(found[0].statement.Resource).toEqual(parameterArnOf('aws/reference/secretsmanager/autoheal/slack'));
    expect(found[0].statement.Condition).toBeUndefined();
  });

  test('notify still has GetSecretValue on the secret, which the reference parameter needs', () => {
    const n = functionStatements(byArn, 'notify').filter((s) => actionsOf(s).includes('secretsmanager:GetSecretValue'));
    expect(n).toHaveLength(1);
  });

  test('without webhooks nobody may GetParameter', () => {
    expect(getParameter(byTag)).toEqual([]);
  });

  const both = synth(
    baseProps({
      notifications: { slackWebhookSecretName: 'autoheal/slack', teamsWebhookParameterName: '/autoheal/teams-webhook' },
    }),
  ).template;

  test('a SecureString parameter: notify may GetParameter it, and reads no secret for it', () => {
    const found = getParameter(both);
    expect(found.map((s) => s.policy)).toEqual([expect.stringMatching(/NotifyRole/)]);
    expect(resourcesOf(found[0].statement)).toEqual([
      parameterArnOf('aws/reference/secretsmanager/autoheal/slack'),
      parameterArnOf('autoheal/teams-webhook'),
    ]);
    const secretReaders = allStatements(both).filter((s) => actionsOf(s.statement).includes('secretsmanager:GetSecretValue'));
    expect(secretReaders).toHaveLength(1);
    expect(JSON.stringify(secretReaders[0].statement.Resource)).toContain(':secret:autoheal/slack-??????');
  });

  test('the functions are told the parameter name, and the secret name, by their variables', () => {
    const env = (both.findResources('AWS::Lambda::Function')[functionId(both, 'notify')] as { Properties: { Environment: { Variables: Record<string, unknown> } } })
      .Properties.Environment.Variables;
    expect(env.AUTOHEAL_TEAMS_WEBHOOK_PARAMETER).toBe('/autoheal/teams-webhook');
    expect(env.AUTOHEAL_SLACK_WEBHOOK_SECRET).toBe('autoheal/slack');
    expect(env.AUTOHEAL_SLACK_WEBHOOK_PARAMETER).toBeUndefined();
    expect(env.AUTOHEAL_TEAMS_WEBHOOK_SECRET).toBeUndefined();
  });

  test('a parameter name without a leading slash is accepted as it is', () => {
    const t = synth(baseProps({ notifications: { slackWebhookParameterName: 'autoheal-slack' } })).template;
    expect(getParameter(t)[0].statement.Resource).toEqual(parameterArnOf('autoheal-slack'));
  });
});
