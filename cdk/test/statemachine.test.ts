import { mkdtempSync, readFileSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';
import { Match } from 'aws-cdk-lib/assertions';
import { DEFAULT_DEFINITION_FILE } from '../lib/autoheal';
import { placeholdersIn, taskTimeouts } from '../lib/asl';
import { TASKS } from '../lib/tasks';
import { baseProps, functionId, synth } from './helpers';

const { template } = synth();
const definitionText = readFileSync(DEFAULT_DEFINITION_FILE, 'utf8');
const machine = Object.values(template.findResources('AWS::StepFunctions::StateMachine'))[0];

describe('the state machine definition', () => {
  test('is the checked-in statemachine/autoheal.asl.json, inline and unchanged', () => {
    expect(machine.Properties.DefinitionString).toBe(definitionText);
  });

  test('uses the placeholders the tasks fill in (the file has not gained or lost one)', () => {
    expect(placeholdersIn(definitionText)).toEqual(TASKS.map((t) => t.placeholder).sort());
  });

  test('every placeholder has a substitution and every substitution is used', () => {
    const subs = machine.Properties.DefinitionSubstitutions as Record<string, unknown>;
    expect(Object.keys(subs).sort()).toEqual(placeholdersIn(definitionText));
    let substituted: string = machine.Properties.DefinitionString;
    for (const key of Object.keys(subs)) {
      expect(substituted).toContain(`\${${key}}`);
      substituted = substituted.split(`\${${key}}`).join('arn:aws:lambda:eu-west-1:111122223333:function:x');
    }
    expect(substituted).not.toMatch(/\$\{/);
    expect(() => JSON.parse(substituted)).not.toThrow();
  });

  test('each placeholder is the ARN of its task function', () => {
    const subs = machine.Properties.DefinitionSubstitutions;
    for (const task of TASKS) {
      expect(subs[task.placeholder]).toEqual({ 'Fn::GetAtt': [functionId(template, task.name), 'Arn'] });
    }
  });

  test('the approval state calls notify through lambda:invoke.waitForTaskToken', () => {
    const def = JSON.parse(definitionText);
    const approval = def.States['Heal each target'].ItemProcessor.States['Wait for approval'];
    expect(approval.Resource).toBe('arn:aws:states:::lambda:invoke.waitForTaskToken');
    expect(approval.Parameters.FunctionName).toBe('${NotifyFunctionArn}');
  });

  test('task timeouts are read from the definition, leaving out the callback wait', () => {
    const t = taskTimeouts(definitionText);
    expect(t.get('DiagnoseFunctionArn')).toBe(300);
    expect(t.get('NotifyFunctionArn')).toBe(60);
  });

  test('a definition with a placeholder no task fills is refused, naming it', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'autoheal-asl-'));
    const file = path.join(dir, 'extra.asl.json');
    const def = JSON.parse(definitionText);
    def.States['Detect unhealthy targets'].Resource = '${MysteryFunctionArn}';
    writeFileSync(file, JSON.stringify(def));
    expect(() => synth(baseProps({ definitionFile: file }))).toThrow(/no task for MysteryFunctionArn.*not in the definition: DetectFunctionArn/);
  });

  test('a definition that is not JSON is refused', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'autoheal-asl-'));
    const file = path.join(dir, 'broken.asl.json');
    writeFileSync(file, '{ "StartAt": ');
    expect(() => synth(baseProps({ definitionFile: file }))).toThrow(/is not valid JSON/);
  });
});

describe('the state machine resource', () => {
  test('is STANDARD, logs ALL with execution data, and is traced', () => {
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      StateMachineType: 'STANDARD',
      LoggingConfiguration: {
        Level: 'ALL',
        IncludeExecutionData: true,
        Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('StateMachineLogs'), 'Arn'] } } }],
      },
      TracingConfiguration: { Enabled: true },
    });
  });

  test('logs to a vended-logs group named after the stack', () => {
    template.hasResourceProperties('AWS::Logs::LogGroup', {
      LogGroupName: '/aws/vendedlogs/states/AutoHealTest-autoheal',
      RetentionInDays: 30,
    });
  });

  test('its role may invoke exactly the task functions, notify included', () => {
    const roleId = machine.Properties.RoleArn['Fn::GetAtt'][0];
    const policies = Object.values(template.findResources('AWS::IAM::Policy')).filter((p) =>
      p.Properties.Roles.some((r: { Ref: string }) => r.Ref === roleId),
    );
    const statements = policies.flatMap((p) => p.Properties.PolicyDocument.Statement);
    const invoke = statements.filter((s) => [s.Action].flat().some((a: string) => a.startsWith('lambda:')));
    expect(invoke).toHaveLength(1);
    expect(invoke[0].Action).toBe('lambda:InvokeFunction');
    const expected = TASKS.map((t) => ({ 'Fn::GetAtt': [functionId(template, t.name), 'Arn'] }));
    expect(invoke[0].Resource).toEqual(expect.arrayContaining(expected));
    expect(invoke[0].Resource).toHaveLength(expected.length);
    expect(invoke[0].Resource).toContainEqual({ 'Fn::GetAtt': [functionId(template, 'notify'), 'Arn'] });
  });
});
