import { mkdtempSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';
import { settingsFromContext } from '../lib/context';

const BASE = '/repo/cdk';
const TG = 'arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef';
const TG2 = 'arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/api/fedcba9876543210';
const settings = (ctx: Record<string, unknown>) => settingsFromContext((k) => ctx[k], BASE);

describe('context flags', () => {
  test('-c strings become props', () => {
    const s = settings({
      targetGroupArns: `${TG}, ${TG2}`,
      loadBalancerFullNames: `${TG}=app/web/0011223344556677`,
      schedule: '10',
      dryRun: 'true',
      emails: 'a@example.com,b@example.com',
      slackSecret: 'autoheal/slack',
      teamsSecret: 'autoheal/teams',
      architecture: 'x86_64',
      lambdaCodeDir: '../target/lambda',
      taskMode: 'activity',
      ssmDir: 'test/fixtures/ssm',
      policy: '{"min_healthy_percent": 60}',
      stackName: 'AutoHealStaging',
    });
    expect(s.stackName).toBe('AutoHealStaging');
    expect(s.usedExample).toBe(false);
    expect(s.props).toMatchObject({
      targetGroupArns: [TG, TG2],
      loadBalancerFullNames: { [TG]: 'app/web/0011223344556677' },
      dryRun: true,
      policy: { min_healthy_percent: 60 },
      notifications: { emails: ['a@example.com', 'b@example.com'], slackWebhookSecretName: 'autoheal/slack', teamsWebhookSecretName: 'autoheal/teams' },
      architecture: 'x86_64',
      lambdaCodeDir: path.resolve(BASE, '../target/lambda'),
      taskMode: 'activity',
      ssmDir: path.resolve(BASE, 'test/fixtures/ssm'),
    });
    expect(s.props.schedule!.toMinutes()).toBe(10);
  });

  test('slackParameter and teamsParameter name SecureString parameters', () => {
    const s = settings({ targetGroupArns: TG, slackParameter: '/autoheal/slack', teamsParameter: '/autoheal/teams' });
    expect(s.props.notifications).toMatchObject({ slackWebhookParameterName: '/autoheal/slack', teamsWebhookParameterName: '/autoheal/teams' });
    expect(settings({ targetGroupArns: TG }).props.notifications).toMatchObject({
      slackWebhookParameterName: undefined,
      teamsWebhookParameterName: undefined,
    });
  });

  test('taskMode defaults to lambda in the construct (unset here)', () => {
    expect(settings({ targetGroupArns: TG }).props.taskMode).toBeUndefined();
    expect(settings({ targetGroupArns: TG, taskMode: 'lambda' }).props.taskMode).toBe('lambda');
  });

  test('cdk.json JSON values (lists, objects, booleans) are accepted too', () => {
    const s = settings({ targetGroupArns: [TG], loadBalancerFullNames: { [TG]: 'app/web/0011223344556677' }, dryRun: false, policy: { dry_run: true } });
    expect(s.props).toMatchObject({ targetGroupArns: [TG], dryRun: false, policy: { dry_run: true } });
  });

  test('targetGroupTag is key=value', () => {
    expect(settings({ targetGroupTag: 'autoheal:group=web=1' }).props.targetGroupTag).toEqual({ key: 'autoheal:group', value: 'web=1' });
  });

  test('the policy may be the path of a JSON file', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'autoheal-policy-'));
    writeFileSync(path.join(dir, 'policy.json'), '{"max_concurrent_heals": 2}');
    expect(settingsFromContext((k) => ({ policy: 'policy.json' } as Record<string, unknown>)[k], dir).props.policy).toEqual({ max_concurrent_heals: 2 });
  });

  test('with no target group the example from cdk.json is used, and the caller is told', () => {
    const s = settings({ example: { targetGroupArn: TG, loadBalancerFullName: 'app/example/0011223344556677' } });
    expect(s.usedExample).toBe(true);
    expect(s.props.targetGroupArns).toEqual([TG]);
    expect(s.props.loadBalancerFullNames).toEqual({ [TG]: 'app/example/0011223344556677' });
  });

  test('a tag wins over the example', () => {
    const s = settings({ targetGroupTag: 'a=b', example: { targetGroupArn: TG } });
    expect(s.usedExample).toBe(false);
    expect(s.props.targetGroupArns).toBeUndefined();
  });

  test.each([
    [{ schedule: 'often' }, /context schedule: expected a whole number of minutes/],
    [{ dryRun: 'maybe' }, /context dryRun: expected true or false/],
    [{ architecture: 'arm' }, /context architecture: expected one of arm64, x86_64/],
    [{ taskMode: 'ecs' }, /context taskMode: expected one of lambda, activity/],
    [{ targetGroupTag: 'novalue' }, /context targetGroupTag: expected key=value/],
    [{ policy: '{not json' }, /context policy: not valid JSON/],
    [{ policy: '[1]' }, /context policy: .*cannot read|context policy: the policy must be a JSON object/],
    [{ loadBalancerFullNames: 'app/x/1' }, /context loadBalancerFullNames: expected targetGroupArn=app/],
    [{ targetGroupArn: TG }, /did you mean targetGroupArns/],
  ])('%j is refused with a message naming the flag', (ctx, message) => {
    expect(() => settings(ctx)).toThrow(message);
  });
});
