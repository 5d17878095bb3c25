import { Duration } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as logs from 'aws-cdk-lib/aws-logs';
import { DEFAULT_SSM_DIR, readCommandDocument, SSM_DOCUMENTS } from '../lib/autoheal';
import { TASKS } from '../lib/tasks';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';
import { baseProps, FIXTURE_SSM_DIR, FUNCTION_NAMES, functionId, LB_NAME, synth, TG_ARN, TG_ARN_2 } from './helpers';

const { template, stack } = synth();

describe('Lambda functions', () => {
  test('there is one function per task plus the trigger, and no other', () => {
    template.resourceCountIs('AWS::Lambda::Function', FUNCTION_NAMES.length);
    for (const name of FUNCTION_NAMES) {
      template.hasResourceProperties('AWS::Lambda::Function', {
        Environment: { Variables: Match.objectLike({ AUTOHEAL_TASK: name }) },
      });
    }
  });

  test('every function is a provided.al2023 bootstrap on arm64 with 256 MB, JSON logs and active tracing', () => {
    const fns = template.findResources('AWS::Lambda::Function');
    for (const fn of Object.values(fns)) {
      expect(fn.Properties).toMatchObject({
        Runtime: 'provided.al2023',
        Handler: 'bootstrap',
        Architectures: ['arm64'],
        MemorySize: 256,
        TracingConfig: { Mode: 'Active' },
        LoggingConfig: { LogFormat: 'JSON', LogGroup: { Ref: expect.any(String) } },
      });
      expect(fn.Properties.Environment.Variables).toMatchObject({
        POWERTOOLS_SERVICE_NAME: 'autoheal',
        AUTOHEAL_INCIDENTS_TABLE: { Ref: expect.stringMatching(/IncidentsTable/) },
        AUTOHEAL_LEASES_TABLE: { Ref: expect.stringMatching(/LeasesTable/) },
        AUTOHEAL_POLICIES_TABLE: { Ref: expect.stringMatching(/PoliciesTable/) },
        AUTOHEAL_TOPIC_ARN: { Ref: expect.stringMatching(/Topic/) },
      });
    }
  });

  test('x86_64 is used when asked for', () => {
    const t = synth(baseProps({ architecture: 'x86_64' })).template;
    const fns = Object.values(t.findResources('AWS::Lambda::Function'));
    expect(fns.every((f) => f.Properties.Architectures[0] === 'x86_64')).toBe(true);
  });

  test.each([
    ['diagnose', 330],
    ['restart_service', 330],
    ['cleanup', 330],
    ['detect', 150],
    ['reboot', 150],
    ['replace', 150],
    ['verify', 150],
    ['lease', 90],
    ['decide', 90],
    ['notify', 90],
    ['trigger', 60],
  ])('the %s function may run for %i s (its state timeout plus a margin)', (name, seconds) => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ AUTOHEAL_TASK: name }) },
      Timeout: seconds,
    });
  });

  test('every function logs to its own log group kept for a month by default', () => {
    template.resourceCountIs('AWS::Logs::LogGroup', FUNCTION_NAMES.length + 1);
    const groups = Object.values(template.findResources('AWS::Logs::LogGroup'));
    expect(groups.every((g) => g.Properties.RetentionInDays === 30)).toBe(true);
  });

  test('logRetention changes every log group', () => {
    const t = synth(baseProps({ logRetention: logs.RetentionDays.ONE_WEEK })).template;
    const groups = Object.values(t.findResources('AWS::Logs::LogGroup'));
    expect(groups.every((g) => g.Properties.RetentionInDays === 7)).toBe(true);
  });

  test('the code of each function is the folder <lambdaCodeDir>/<name>', () => {
    // A code folder where every bootstrap differs: every function must get its own asset.
    const dir = mkdtempSync(path.join(tmpdir(), 'autoheal-distinct-'));
    for (const name of FUNCTION_NAMES) {
      mkdirSync(path.join(dir, name));
      writeFileSync(path.join(dir, name, 'bootstrap'), `#!/bin/sh\necho ${name}\n`);
    }
    const t = synth(baseProps({ lambdaCodeDir: dir })).template;
    const keys = Object.values(t.findResources('AWS::Lambda::Function')).map((f) => JSON.stringify(f.Properties.Code.S3Key));
    expect(new Set(keys).size).toBe(FUNCTION_NAMES.length);
  });
});

describe('policy and notifications', () => {
  test('the trigger gets the policy as JSON in AUTOHEAL_POLICY, with dryRun merged in', () => {
    const t = synth(baseProps({ policy: { min_healthy_percent: 60, dry_run: false }, dryRun: true })).template;
    const id = functionId(t, 'trigger');
    const env = t.toJSON().Resources[id].Properties.Environment.Variables;
    expect(JSON.parse(env.AUTOHEAL_POLICY)).toEqual({ min_healthy_percent: 60, dry_run: true });
    expect(env.AUTOHEAL_TARGET_GROUP_ARNS).toBe(TG_ARN);
    expect(env.AUTOHEAL_STATE_MACHINE_ARN).toEqual({ Ref: expect.stringMatching(/StateMachine/) });
  });

  test('an empty policy is passed as {}', () => {
    const env = template.toJSON().Resources[functionId(template, 'trigger')].Properties.Environment.Variables;
    expect(env.AUTOHEAL_POLICY).toBe('{}');
  });

  test('webhook secrets reach the functions by name only, never by value', () => {
    const t = synth(
      baseProps({ notifications: { slackWebhookSecretName: 'autoheal/slack', teamsWebhookSecretName: 'autoheal/teams' } }),
    ).template;
    t.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({
          AUTOHEAL_TASK: 'notify',
          AUTOHEAL_SLACK_WEBHOOK_SECRET: 'autoheal/slack',
          AUTOHEAL_TEAMS_WEBHOOK_SECRET: 'autoheal/teams',
        }),
      },
    });
    expect(JSON.stringify(t.toJSON())).not.toMatch(/resolve:secretsmanager/);
    t.resourceCountIs('AWS::SecretsManager::Secret', 0);
  });

  test('the topic is encrypted with a rotating, retained KMS key and refuses plain HTTP', () => {
    template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
    template.hasResource('AWS::KMS::Key', {
      Properties: { EnableKeyRotation: true },
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
  });

  test('CloudWatch may use the topic key, so alarm actions can publish to the encrypted topic', () => {
    template.hasResourceProperties('AWS::KMS::Key', {
      KeyPolicy: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Principal: { Service: 'cloudwatch.amazonaws.com' },
            Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
          }),
        ]),
      },
    });
  });

  test('each email address becomes an email subscription', () => {
    const t = synth(baseProps({ notifications: { emails: ['ops@example.com', 'oncall@example.com'] } })).template;
    t.resourceCountIs('AWS::SNS::Subscription', 2);
    t.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'ops@example.com' });
  });
});

describe('DynamoDB tables', () => {
  const common = {
    BillingMode: 'PAY_PER_REQUEST',
    TimeToLiveSpecification: { AttributeName: 'expires_at', Enabled: true },
    PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
    SSESpecification: { SSEEnabled: true },
  };

  test('the incidents table is keyed by incident_id with the InstanceId-Timestamp index', () => {
    template.hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Retain',
      Properties: {
        ...common,
        KeySchema: [{ AttributeName: 'incident_id', KeyType: 'HASH' }],
        GlobalSecondaryIndexes: [
          {
            IndexName: 'InstanceId-Timestamp',
            KeySchema: [
              { AttributeName: 'instance_id', KeyType: 'HASH' },
              { AttributeName: 'detected_at', KeyType: 'RANGE' },
            ],
            Projection: { ProjectionType: 'ALL' },
          },
        ],
      },
    });
  });

  test('the leases and policies tables are keyed by instance_id, on demand, with TTL and PITR, and retained', () => {
    const tables = template.findResources('AWS::DynamoDB::Table', {
      Properties: { KeySchema: [{ AttributeName: 'instance_id', KeyType: 'HASH' }] },
    });
    expect(Object.keys(tables)).toHaveLength(2);
    for (const t of Object.values(tables)) {
      expect(t.Properties).toMatchObject(common);
      expect(t.DeletionPolicy).toBe('Retain');
    }
  });
});

describe('EventBridge rules', () => {
  test('the schedule rule runs every 5 minutes by default and targets the trigger', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(5 minutes)',
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [functionId(template, 'trigger'), 'Arn'] } })],
    });
  });

  test('schedule sets the rate', () => {
    const t = synth(baseProps({ schedule: Duration.minutes(15) })).template;
    t.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(15 minutes)' });
  });

  test('alarm state changes of this stack’s autoheal- alarms go to the trigger', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.cloudwatch'],
        'detail-type': ['CloudWatch Alarm State Change'],
        detail: { alarmName: [{ prefix: 'autoheal-' }], state: { value: ['ALARM'] } },
        resources: [
          {
            'Fn::Join': [
              '',
              Match.arrayWith([':alarm:autoheal-web-UnHealthyHostCount']),
            ],
          },
        ],
      },
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [functionId(template, 'trigger'), 'Arn'] } })],
    });
  });

  test('EventBridge may invoke the trigger for both rules', () => {
    template.resourceCountIs('AWS::Lambda::Permission', 2);
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Principal: 'events.amazonaws.com',
      FunctionName: { 'Fn::GetAtt': [functionId(template, 'trigger'), 'Arn'] },
    });
  });
});

describe('target-group alarms', () => {
  test('each target group gets an UnHealthyHostCount ≥ 1 alarm over 2 minutes, named autoheal-<tg>-UnHealthyHostCount', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'autoheal-web-UnHealthyHostCount',
      Namespace: 'AWS/ApplicationELB',
      MetricName: 'UnHealthyHostCount',
      Dimensions: [
        { Name: 'LoadBalancer', Value: LB_NAME },
        { Name: 'TargetGroup', Value: 'targetgroup/web/0123456789abcdef' },
      ],
      Period: 60,
      EvaluationPeriods: 2,
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    });
  });

  test('a target group without its load balancer gets no alarm, and a warning says so', () => {
    const { stack: s, template: t } = synth(baseProps({ targetGroupArns: [TG_ARN, TG_ARN_2] }));
    t.resourcePropertiesCountIs('AWS::CloudWatch::Alarm', { MetricName: 'UnHealthyHostCount' }, 1);
    Annotations.fromStack(s).hasWarning('/AutoHealTest/AutoHeal', Match.stringLikeRegexp('No alarm for .*targetgroup/api/'));
  });

  test('tag-selected target groups get no alarms and no alarm rule: they are healed on the schedule', () => {
    const t = synth(baseProps({ targetGroupArns: undefined, loadBalancerFullNames: undefined, targetGroupTag: { key: 'autoheal', value: 'on' } })).template;
    t.resourcePropertiesCountIs('AWS::CloudWatch::Alarm', { MetricName: 'UnHealthyHostCount' }, 0);
    t.resourceCountIs('AWS::Events::Rule', 1);
    t.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ AUTOHEAL_TASK: 'trigger', AUTOHEAL_TARGET_GROUP_TAG: 'autoheal=on' }) },
    });
  });
});

describe('alarms on the healer and the dashboard', () => {
  test('failed executions raise an alarm that notifies the topic', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/States',
      MetricName: 'ExecutionsFailed',
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      AlarmActions: [{ Ref: Match.stringLikeRegexp('Topic') }],
    });
  });

  test('every function has an Errors alarm, and the trigger a Throttles alarm, all notifying the topic', () => {
    for (const name of FUNCTION_NAMES) {
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: 'AWS/Lambda',
        MetricName: 'Errors',
        Dimensions: [{ Name: 'FunctionName', Value: { Ref: functionId(template, name) } }],
        AlarmActions: [{ Ref: Match.stringLikeRegexp('Topic') }],
      });
    }
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'Throttles',
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: functionId(template, 'trigger') } }],
    });
  });

  test('the dashboard shows host counts, actions, MTTR, incidents and failed executions', () => {
    const dashboards = Object.values(template.findResources('AWS::CloudWatch::Dashboard'));
    expect(dashboards).toHaveLength(1);
    const body = JSON.stringify(dashboards[0].Properties.DashboardBody);
    for (const needle of ['HealthyHostCount', 'UnHealthyHostCount', 'MetricName=\\\\\\"Actions', 'MttrSeconds', 'Incidents', 'ExecutionsFailed']) {
      expect(body).toContain(needle);
    }
  });
});

describe('SSM documents', () => {
  test.each(SSM_DOCUMENTS.map((d) => [d.name, d.file, d.env]))(
    '%s is a YAML Command document read from ssm/%s and named in %s',
    (name, file, env) => {
      template.hasResourceProperties('AWS::SSM::Document', {
        Name: name,
        DocumentType: 'Command',
        DocumentFormat: 'YAML',
        UpdateMethod: 'NewVersion',
        Content: readCommandDocument(path.join(FIXTURE_SSM_DIR, file)),
      });
      template.hasResourceProperties('AWS::Lambda::Function', {
        Environment: { Variables: Match.objectLike({ AUTOHEAL_TASK: 'diagnose', [env]: { Ref: Match.anyValue() } }) },
      });
    },
  );

  // The real documents are written alongside; each is checked as soon as it exists.
  test.each(SSM_DOCUMENTS.map((d) => [d.file]))('the shipped ssm/%s is a Command document the stack accepts', (file) => {
    const real = path.join(DEFAULT_SSM_DIR, file);
    if (!existsSync(real)) {
      console.warn(`${real} does not exist yet: checked only against the fixture`);
      return;
    }
    const doc = readCommandDocument(real);
    expect(doc.schemaVersion).toBe('2.2');
    expect(JSON.stringify(doc).length).toBeLessThan(64 * 1024);
  });

  test('the stack builds from the shipped ssm/ folder when all three documents are there', () => {
    if (!SSM_DOCUMENTS.every((d) => existsSync(path.join(DEFAULT_SSM_DIR, d.file)))) return;
    const t = synth(baseProps({ ssmDir: DEFAULT_SSM_DIR })).template;
    t.resourceCountIs('AWS::SSM::Document', 3);
  });

  test('a missing document names the file and the ssmDir setting', () => {
    expect(() => synth(baseProps({ ssmDir: path.join(FIXTURE_SSM_DIR, 'nowhere') }))).toThrow(
      /cannot read the SSM document .*diagnostics\.yml.*ssmDir/,
    );
  });

  test('a document that is not schemaVersion 2.2 is refused', () => {
    expect(() => readCommandDocument(path.join(__dirname, 'fixtures', 'bad-ssm', 'diagnostics.yml'))).toThrow(/schemaVersion must be "2.2"/);
  });
});

describe('activity mode', () => {
  const t = synth(baseProps({ taskMode: 'activity' })).template;

  test('every task but notify becomes a Step Functions activity', () => {
    t.resourceCountIs('AWS::StepFunctions::Activity', TASKS.length - 1);
    t.resourceCountIs('AWS::Lambda::Function', 2);
    const subs = Object.values(t.findResources('AWS::StepFunctions::StateMachine'))[0].Properties.DefinitionSubstitutions;
    for (const task of TASKS) {
      if (task.name === 'notify') {
        expect(subs[task.placeholder]).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/NotifyFunction/), 'Arn'] });
      } else {
        expect(subs[task.placeholder]).toEqual({ Ref: expect.stringMatching(new RegExp(`${task.id}Activity`)) });
      }
    }
  });

  test('the worker policy may take tasks from our activities only', () => {
    t.hasResourceProperties('AWS::IAM::ManagedPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: Match.arrayWith(['states:GetActivityTask']),
            Resource: Match.arrayWith([{ Ref: Match.stringLikeRegexp('DetectActivity') }]),
          }),
        ]),
      },
    });
  });
});

describe('the stack as a whole', () => {
  test('a stack built from valid props has no warnings or errors', () => {
    expect(Annotations.fromStack(stack).findWarning('*', Match.anyValue())).toEqual([]);
    expect(Annotations.fromStack(stack).findError('*', Match.anyValue())).toEqual([]);
  });

  test('the outputs name the state machine, the topic and the tables', () => {
    const outputs = Object.keys(template.toJSON().Outputs);
    expect(outputs).toEqual(
      expect.arrayContaining(['StateMachineArn', 'TopicArn', 'IncidentsTableName', 'LeasesTableName', 'PoliciesTableName', 'ApproverPolicyArn']),
    );
  });

  test('synthesizing twice gives the same template', () => {
    expect(synth().template.toJSON()).toEqual(Template.fromStack(stack).toJSON());
  });
});
