import { App, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { AwsSolutionsChecks } from 'cdk-nag';
import { AutoHealProps } from '../lib/autoheal';
import { AutoHealStack } from '../lib/autoheal-stack';
import { addChecks } from '../lib/checks';
import { baseProps, TG_ARN_2 } from './helpers';

/** The AwsSolutions findings left after acknowledgments, as "rule at path" lines. */
function findings(app: App): string[] {
  const report = new AwsSolutionsChecks(undefined, { verbose: true }).validateScope(app);
  return report.violations.flatMap((v) => v.violatingResources.map((r) => `${v.ruleName} at ${r.constructPath}: ${v.description.slice(0, 120)}`));
}

const configurations: Array<[string, AutoHealProps]> = [
  ['target groups by ARN', baseProps()],
  ['two target groups, one without its load balancer', baseProps({ targetGroupArns: [baseProps().targetGroupArns![0], TG_ARN_2] })],
  ['target groups by tag', baseProps({ targetGroupArns: undefined, loadBalancerFullNames: undefined, targetGroupTag: { key: 'autoheal', value: 'on' } })],
  ['activity mode', baseProps({ taskMode: 'activity' })],
  [
    'every notification endpoint',
    baseProps({ notifications: { emails: ['ops@example.com'], slackWebhookSecretName: 'autoheal/slack', teamsWebhookSecretName: 'autoheal/teams' } }),
  ],
  [
    'webhooks in Parameter Store, in activity mode',
    baseProps({ taskMode: 'activity', notifications: { slackWebhookParameterName: '/autoheal/slack', teamsWebhookSecretName: 'autoheal/teams' } }),
  ],
];

describe.each(configurations)('cdk-nag AwsSolutions with %s', (_name, props) => {
  test('leaves no unacknowledged error or warning', () => {
    const app = new App();
    new AutoHealStack(app, 'AutoHealNag', { autoheal: props });
    expect(findings(app)).toEqual([]);
  });
});

describe('cdk-nag as the app runs it', () => {
  test('synthesis with the AwsSolutions plugin succeeds', () => {
    const app = new App({ outdir: require('fs').mkdtempSync(require('path').join(require('os').tmpdir(), 'autoheal-nag-')) });
    new AutoHealStack(app, 'AutoHealNag', { autoheal: baseProps() });
    addChecks(app);
    expect(() => app.synth()).not.toThrow();
  });

  test('an unacknowledged wildcard is reported (the check can fail)', () => {
    const app = new App();
    const stack = new AutoHealStack(app, 'AutoHealNag', { autoheal: baseProps() });
    const role = new iam.Role(stack, 'Careless', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    role.addToPolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: ['*'] }));
    expect(findings(app)).toEqual([expect.stringMatching(/^AwsSolutions-IAM5\[Resource::\*\] at AutoHealNag\/Careless/)]);
  });

  test('every acknowledgment gives a specific reason', () => {
    const app = new App();
    const stack = new AutoHealStack(app, 'AutoHealNag', { autoheal: baseProps({ taskMode: 'lambda' }) });
    const acks = stack.node
      .findAll()
      .flatMap((c) => c.node.metadata.filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY).map((m) => m.data));
    expect(acks.length).toBeGreaterThan(0);
    // Each entry maps "Annotation::<rule id>" to its reason.
    for (const [id, reason] of acks.flatMap((a) => Object.entries(a as Record<string, string>))) {
      expect(id).toMatch(/^Annotation::AwsSolutions-IAM5\[Resource::/);
      expect(reason).toMatch(/^IAM5: /);
      expect(reason.length).toBeGreaterThan(60);
    }
  });
});
