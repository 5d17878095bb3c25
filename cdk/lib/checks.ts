/**
 * cdk-nag 3 is a policy-validation plugin, not an Aspect: it is registered with
 * `Validations.of(app).addPlugins(...)`, runs when the app synthesizes, and interrupts synthesis
 * on any finding that is not acknowledged with `Validations.of(construct).acknowledge(...)`.
 */
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';

export function addChecks(app: App): AwsSolutionsChecks {
  const checks = new AwsSolutionsChecks(app, { verbose: true });
  Validations.of(app).addPlugins(checks);
  return checks;
}
