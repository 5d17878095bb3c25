/**
 * Activity mode (`taskMode: 'activity'`): the tasks run in `autoheal worker --activity` instead of
 * Lambda. notify stays a Lambda: the approval state invokes it with lambda:invoke.waitForTaskToken.
 */
import { Template } from 'aws-cdk-lib/assertions';
import { TASKS, UNSCOPABLE_ACTIONS } from '../lib/tasks';
import { actionsOf, baseProps, functionId, functionStatements, managedPolicy, resourcesOf, Statement, synth } from './helpers';

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

const { template } = synth(baseProps({ taskMode: 'activity' }));
const lambdaMode = synth().template;
const ACTIVITY_TASKS = TASKS.filter((t) => t.name !== 'notify');

const REGION = 'eu-west-1';
const ACCOUNT = '111122223333';

/** Activity logical id -> its Name. */
const activityNames = (t: Template): Record<string, string> =>
  Object.fromEntries(Object.entries(t.findResources('AWS::StepFunctions::Activity')).map(([id, r]) => [id, (r as Json).Properties.Name]));

/**
 * The definition as Step Functions will see it: each `${Placeholder}` replaced by what
 * CloudFormation resolves its substitution to (an activity's Ref is its ARN, a function's Arn is
 * its ARN; both built here from the resource's own properties).
 */
function deployedDefinition(t: Template): string {
  const machine = Object.values(t.findResources('AWS::StepFunctions::StateMachine'))[0] as Json;
  const names = activityNames(t);
  const functions = t.findResources('AWS::Lambda::Function');
  const resolve = (v: Json): string => {
    if (v.Ref && names[v.Ref]) return `arn:aws:states:${REGION}:${ACCOUNT}:activity:${names[v.Ref]}`;
    const att = v['Fn::GetAtt'];
    if (att && att[1] === 'Arn' && functions[att[0]]) {
      return `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${(functions[att[0]] as Json).Properties.Environment.Variables.AUTOHEAL_TASK}`;
    }
    throw new Error(`unexpected substitution ${JSON.stringify(v)}`);
  };
  let text: string = machine.Properties.DefinitionString;
  for (const [key, value] of Object.entries(machine.Properties.DefinitionSubstitutions as Record<string, Json>)) {
    text = text.split(`\${${key}}`).join(resolve(value));
  }
  return text;
}

/** Every Task state of a definition (in Map item processors too), by name. */
function taskStates(definition: string): Array<[string, Json]> {
  const out: Array<[string, Json]> = [];
  const walk = (states: Record<string, Json> | undefined): void => {
    for (const [name, s] of Object.entries(states ?? {})) {
      if (s.Type === 'Task') out.push([name, s]);
      walk(s.ItemProcessor?.States);
      walk(s.Iterator?.States);
      for (const b of s.Branches ?? []) walk(b.States);
    }
  };
  walk(JSON.parse(definition).States);
  return out;
}

describe('activity mode: the definition', () => {
  const definition = deployedDefinition(template);
  const placeholderTask = (resource: string): string | undefined => {
    const m = /:activity:autoheal-(\w+)$/.exec(resource) ?? /:function:(\w+)$/.exec(resource);
    return m?.[1];
  };

  test('every task but notify is an activity named autoheal-<task>', () => {
    expect(Object.values(activityNames(template)).sort()).toEqual(ACTIVITY_TASKS.map((t) => `autoheal-${t.name}`).sort());
  });

  test('each task state runs its task activity; only notify is a Lambda', () => {
    const states = taskStates(definition);
    expect(states.length).toBeGreaterThan(ACTIVITY_TASKS.length);
    const seen = new Set<string>();
    for (const [name, s] of states) {
      if (s.Resource.startsWith('arn:aws:states:::')) {
        // A service integration: only the approval callback, and it invokes notify.
        expect(s.Resource).toBe('arn:aws:states:::lambda:invoke.waitForTaskToken');
        expect(s.Parameters.FunctionName).toBe(`arn:aws:lambda:${REGION}:${ACCOUNT}:function:notify`);
        continue;
      }
      const task = placeholderTask(s.Resource);
      expect([name, task]).toEqual([name, expect.any(String)]); // names the state if not
      if (task === 'notify') {
        expect(s.Resource).toBe(`arn:aws:lambda:${REGION}:${ACCOUNT}:function:notify`);
      } else {
        expect(s.Resource).toBe(`arn:aws:states:${REGION}:${ACCOUNT}:activity:autoheal-${task}`);
      }
      seen.add(task!);
    }
    expect([...seen].sort()).toEqual(TASKS.map((t) => t.name).sort());
  });

  test('no Lambda ARN but notify is left in the definition', () => {
    expect(definition.match(/:function:\w+/g)!.every((m) => m === ':function:notify')).toBe(true);
    expect(definition).not.toMatch(/\$\{/);
  });

  test('each substitution of an activity task is the Ref (the ARN) of its activity', () => {
    const machine = Object.values(template.findResources('AWS::StepFunctions::StateMachine'))[0] as Json;
    const subs = machine.Properties.DefinitionSubstitutions;
    const names = activityNames(template);
    for (const task of ACTIVITY_TASKS) {
      expect(names[subs[task.placeholder].Ref]).toBe(`autoheal-${task.name}`);
    }
    expect(subs.NotifyFunctionArn).toEqual({ 'Fn::GetAtt': [functionId(template, 'notify'), 'Arn'] });
  });

  test('lambda mode (the default) creates no activity and leaves no activity ARN in the definition', () => {
    lambdaMode.resourceCountIs('AWS::StepFunctions::Activity', 0);
    expect(deployedDefinition(lambdaMode)).not.toMatch(/:activity:/);
  });
});

describe('activity mode: resources', () => {
  test('the only Lambda functions are trigger and notify', () => {
    const tasks = Object.values(template.findResources('AWS::Lambda::Function')).map(
      (f) => (f as Json).Properties.Environment.Variables.AUTOHEAL_TASK,
    );
    expect(tasks.sort()).toEqual(['notify', 'trigger']);
  });

  test('the state machine role may invoke notify only, and needs nothing for the activities', () => {
    const machine = Object.values(template.findResources('AWS::StepFunctions::StateMachine'))[0] as Json;
    const roleId = machine.Properties.RoleArn['Fn::GetAtt'][0];
    const statements = Object.values(template.findResources('AWS::IAM::Policy'))
      .filter((p) => (p as Json).Properties.Roles.some((r: Json) => r.Ref === roleId))
      .flatMap((p) => (p as Json).Properties.PolicyDocument.Statement);
    const invoke = statements.filter((s) => actionsOf(s).includes('lambda:InvokeFunction'));
    expect(invoke).toHaveLength(1);
    expect(resourcesOf(invoke[0])).toEqual([{ 'Fn::GetAtt': [functionId(template, 'notify'), 'Arn'] }]);
    expect(statements.flatMap(actionsOf).filter((a) => a.startsWith('states:'))).toEqual([]);
  });

  test('ActivityArns lists name=arn for every activity, in task order, as `autoheal worker --activity` takes them', () => {
    const out = template.toJSON().Outputs.ActivityArns.Value;
    const names = activityNames(template);
    // Render the Fn::Join with each Ref as the ARN CloudFormation gives it.
    const [sep, parts] = out['Fn::Join'];
    const text = (parts as Json[])
      .map((p) => (typeof p === 'string' ? p : `arn:aws:states:${REGION}:${ACCOUNT}:activity:${names[p.Ref]}`))
      .join(sep);
    expect(text.split(',')).toEqual(
      ACTIVITY_TASKS.map((t) => `${t.name}=arn:aws:states:${REGION}:${ACCOUNT}:activity:autoheal-${t.name}`),
    );
  });

  test('WorkerPolicyArn and ActivityArns are output in activity mode only; OperatorPolicyArn always', () => {
    const outputs = Object.keys(template.toJSON().Outputs);
    expect(outputs).toEqual(expect.arrayContaining(['WorkerPolicyArn', 'ActivityArns', 'OperatorPolicyArn']));
    expect(template.toJSON().Outputs.WorkerPolicyArn.Value).toEqual({ Ref: managedPolicy(template, 'WorkerPolicy').id });
    const lambdaOutputs = Object.keys(lambdaMode.toJSON().Outputs);
    expect(lambdaOutputs).toContain('OperatorPolicyArn');
    expect(lambdaOutputs).not.toContain('WorkerPolicyArn');
    expect(lambdaOutputs).not.toContain('ActivityArns');
  });
});

describe('activity mode: the worker policy', () => {
  const { statements } = managedPolicy(template, 'WorkerPolicy');
  const activityRefs = Object.keys(activityNames(template)).map((id) => ({ Ref: id }));

  test('takes and answers tasks of our activities only (not the state machine: no approvals)', () => {
    const states = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('states:')));
    expect(states).toHaveLength(1);
    expect(actionsOf(states[0]).sort()).toEqual(
      ['states:GetActivityTask', 'states:SendTaskFailure', 'states:SendTaskHeartbeat', 'states:SendTaskSuccess'].sort(),
    );
    expect(resourcesOf(states[0])).toEqual(expect.arrayContaining(activityRefs));
    expect(resourcesOf(states[0])).toHaveLength(activityRefs.length);
  });

  test('has every permission of every activity task, and nothing on * but unscopable reads', () => {
    // Each statement a task's Lambda has in lambda mode (but logging and X-Ray, which belong to
    // the Lambda) is in the worker policy, with the same resources and conditions.
    const key = (s: Statement): string => JSON.stringify([actionsOf(s), resourcesOf(s), s.Condition ?? null]);
    const have = new Set(statements.map(key));
    const haveActions = new Set(statements.flatMap(actionsOf));
    for (const task of ACTIVITY_TASKS) {
      for (const s of functionStatements(lambdaMode, task.name)) {
        if (actionsOf(s).every((a) => /^(logs|xray):/.test(a))) continue;
        if (resourcesOf(s).includes('*')) {
          for (const a of actionsOf(s)) expect([task.name, a, haveActions.has(a)]).toEqual([task.name, a, true]);
        } else {
          expect([task.name, have.has(key(s))]).toEqual([task.name, true]);
        }
      }
    }
    for (const s of statements) {
      if (resourcesOf(s).includes('*')) for (const a of actionsOf(s)) expect(UNSCOPABLE_ACTIONS).toContain(a);
    }
  });
});
