import { registerEnumType } from 'type-graphql';
import { ExecutionStatus, ExecutionTrigger, LogStream, StepStatus } from '../../entities/enums.js';

registerEnumType(ExecutionStatus, { name: 'ExecutionStatus', description: 'QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED | TIMED_OUT' });
registerEnumType(ExecutionTrigger, { name: 'ExecutionTrigger', description: 'Why an execution exists.' });
registerEnumType(StepStatus, { name: 'StepStatus', description: 'Steps after a failure are SKIPPED.' });
registerEnumType(LogStream, { name: 'LogStream' });

export { ExecutionStatus, ExecutionTrigger, LogStream, StepStatus };
