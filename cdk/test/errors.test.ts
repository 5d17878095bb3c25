import { mkdtempSync } from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';
import { Duration } from 'aws-cdk-lib';
import { effectivePolicy, parseTargetGroupArn } from '../lib/autoheal';
import { baseProps, synth, TG_ARN } from './helpers';

describe('props that cannot work are refused with a clear error', () => {
  test('no target group at all names both props', () => {
    expect(() => synth(baseProps({ targetGroupArns: undefined, loadBalancerFullNames: undefined }))).toThrow(
      /targetGroupArns .* or targetGroupTag/,
    );
  });

  test('an empty targetGroupArns list counts as none', () => {
    expect(() => synth(baseProps({ targetGroupArns: [], loadBalancerFullNames: undefined }))).toThrow(/targetGroupArns/);
  });

  test('both target group props at once are refused', () => {
    expect(() => synth(baseProps({ targetGroupTag: { key: 'a', value: 'b' } }))).toThrow(/targetGroupArns or targetGroupTag, not both/);
  });

  test('a target group tag without a key is refused', () => {
    expect(() =>
      synth(baseProps({ targetGroupArns: undefined, loadBalancerFullNames: undefined, targetGroupTag: { key: '', value: 'x' } })),
    ).toThrow(/targetGroupTag needs both key and value/);
  });

  test('something that is not a target group ARN is refused, quoting it', () => {
    expect(() => synth(baseProps({ targetGroupArns: ['arn:aws:elasticloadbalancing:eu-west-1:111122223333:loadbalancer/app/x/0123456789abcdef'], loadBalancerFullNames: undefined }))).toThrow(
      /targetGroupArns: "arn:aws:elasticloadbalancing:.*loadbalancer.*" is not a target group ARN/,
    );
  });

  test('the same target group twice is refused', () => {
    expect(() => synth(baseProps({ targetGroupArns: [TG_ARN, TG_ARN] }))).toThrow(/lists the target group "web" twice/);
  });

  test('a load balancer name for a target group that is not healed is refused', () => {
    expect(() =>
      synth(baseProps({ loadBalancerFullNames: { 'arn:aws:elasticloadbalancing:eu-west-1:111122223333:targetgroup/other/0123456789abcdef': 'app/x/0123456789abcdef' } })),
    ).toThrow(/loadBalancerFullNames names .*other.*not in targetGroupArns/);
  });

  test('a load balancer ARN instead of its full name is refused', () => {
    expect(() => synth(baseProps({ loadBalancerFullNames: { [TG_ARN]: 'arn:aws:elasticloadbalancing:eu-west-1:111122223333:loadbalancer/app/x/0123456789abcdef' } }))).toThrow(
      /is not a load balancer full name \(app\/<name>\/<16 hex digits>\)/,
    );
  });

  test('a schedule that is not whole minutes is refused', () => {
    expect(() => synth(baseProps({ schedule: Duration.seconds(90) }))).toThrow(/schedule must be a whole number of minutes/);
  });

  test('a policy too large for a Lambda environment variable is refused', () => {
    const instances = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`i-${String(i).padStart(17, '0')}`, { skip: true }]));
    expect(() => synth(baseProps({ policy: { instances } }))).toThrow(/policy is \d+ characters of JSON/);
  });

  test('a policy that is not an object is refused', () => {
    expect(() => effectivePolicy({ policy: [] as unknown as Record<string, unknown> })).toThrow(/policy must be a JSON object/);
  });

  test('an address that is not an email is refused', () => {
    expect(() => synth(baseProps({ notifications: { emails: ['ops at example.com'] } }))).toThrow(/"ops at example.com" is not an email address/);
  });

  test('an unknown architecture or task mode is refused', () => {
    expect(() => synth(baseProps({ architecture: 'riscv' as never }))).toThrow(/architecture must be "arm64" or "x86_64"/);
    expect(() => synth(baseProps({ taskMode: 'fargate' as never }))).toThrow(/taskMode must be "lambda" or "activity"/);
  });

  test('missing Lambda binaries point at make build-lambdas and lambdaCodeDir', () => {
    const empty = mkdtempSync(path.join(tmpdir(), 'autoheal-empty-'));
    expect(() => synth(baseProps({ lambdaCodeDir: empty }))).toThrow(/no Lambda binary at .*detect\/bootstrap.*make build-lambdas.*lambdaCodeDir/);
  });
});

describe('helpers', () => {
  test('a target group ARN gives the CloudWatch TargetGroup dimension and the name', () => {
    expect(parseTargetGroupArn(TG_ARN)).toEqual({ arn: TG_ARN, dimension: 'targetgroup/web/0123456789abcdef', name: 'web' });
  });

  test('dryRun wins over the policy’s dry_run, and is left out when not given', () => {
    expect(effectivePolicy({ policy: { dry_run: true }, dryRun: false })).toEqual({ dry_run: false });
    expect(effectivePolicy({ policy: { cooldown_s: 60 } })).toEqual({ cooldown_s: 60 });
  });

  test('a webhook given both as a secret and as a parameter is refused', () => {
    expect(() =>
      synth(baseProps({ notifications: { slackWebhookSecretName: 'autoheal/slack', slackWebhookParameterName: '/autoheal/slack' } })),
    ).toThrow(/slackWebhookSecretName or slackWebhookParameterName, not both/);
  });

  test.each(['autoheal/teams', '/autoheal//teams', '/autoheal/te ams', '/'])('the parameter name %j is refused', (name) => {
    expect(() => synth(baseProps({ notifications: { teamsWebhookParameterName: name } }))).toThrow(
      /teamsWebhookParameterName: ".*" is not an SSM parameter name/,
    );
  });

  test('a Secrets Manager reference given as a parameter points at the secret prop', () => {
    expect(() =>
      synth(baseProps({ notifications: { slackWebhookParameterName: '/aws/reference/secretsmanager/autoheal/slack' } })),
    ).toThrow(/give slackWebhookSecretName \(the secret's name\) instead/);
  });
});
