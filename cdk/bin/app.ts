#!/usr/bin/env node
/**
 * The autoheal CDK app. Every setting comes from context: cdk.json, or `-c name=value`
 * (README.md, "Context flags"). cdk-nag's AwsSolutions checks run on every synth.
 */
import * as path from 'path';
import { Annotations, App } from 'aws-cdk-lib';
import { AutoHealStack } from '../lib/autoheal-stack';
import { addChecks } from '../lib/checks';
import { settingsFromContext } from '../lib/context';

const app = new App();
const settings = settingsFromContext((k) => app.node.tryGetContext(k), path.resolve(__dirname, '..'));
const stack = new AutoHealStack(app, settings.stackName, { autoheal: settings.props });
if (settings.usedExample) {
  Annotations.of(stack).addWarningV2(
    'autoheal:example-target-group',
    'No target group given: using the example target group from cdk.json. ' +
      'Pass -c targetGroupArns=<arn>[,<arn>] or -c targetGroupTag=<key>=<value> before deploying.',
  );
}
addChecks(app);
app.synth();
