import { CfnOutput, Stack, StackProps } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { AutoHeal, AutoHealProps } from './autoheal';

export interface AutoHealStackProps extends StackProps {
  readonly autoheal: AutoHealProps;
}

/** One AutoHeal and the outputs an operator (and the `autoheal` CLI) needs. */
export class AutoHealStack extends Stack {
  public readonly autoheal: AutoHeal;

  constructor(scope: Construct, id: string, props: AutoHealStackProps) {
    super(scope, id, {
      description: 'autoheal: self-healing for load-balanced EC2 targets (Step Functions + Rust Lambdas)',
      ...props,
    });
    this.autoheal = new AutoHeal(this, 'AutoHeal', props.autoheal);
    const a = this.autoheal;
    new CfnOutput(this, 'StateMachineArn', { value: a.stateMachine.stateMachineArn });
    new CfnOutput(this, 'TopicArn', { value: a.topic.topicArn });
    new CfnOutput(this, 'IncidentsTableName', { value: a.incidentsTable.tableName });
    new CfnOutput(this, 'LeasesTableName', { value: a.leasesTable.tableName });
    new CfnOutput(this, 'PoliciesTableName', { value: a.policiesTable.tableName });
    new CfnOutput(this, 'TopicKeyArn', { value: a.topicKey.keyArn });
    new CfnOutput(this, 'ApproverPolicyArn', { value: a.approverPolicy.managedPolicyArn });
    new CfnOutput(this, 'OperatorPolicyArn', { value: a.operatorPolicy.managedPolicyArn });
    if (a.workerPolicy) new CfnOutput(this, 'WorkerPolicyArn', { value: a.workerPolicy.managedPolicyArn });
    if (a.activityArnList) {
      new CfnOutput(this, 'ActivityArns', {
        description: 'autoheal worker --activity: one name=arn per task, comma-separated',
        value: a.activityArnList,
      });
    }
    new CfnOutput(this, 'DashboardName', { value: a.dashboard.dashboardName });
  }
}
