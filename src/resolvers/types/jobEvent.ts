import { Field, ID, ObjectType, registerEnumType } from 'type-graphql';
import { JobChange } from '../../executions/signals.js';

registerEnumType(JobChange, {
  name: 'JobChange',
  description: 'CREATED or UPDATED by a submit, PAUSED, RESUMED, DELETED.',
});

/** The `jobUpdated` event: which job, what happened, and the state that matters to a list of jobs. */
@ObjectType('JobEvent', { description: "A change to one of the caller's jobs; read the job itself (`job(id)`) for the rest of it." })
export class JobEventType {
  @Field(() => ID)
  id!: string;

  @Field(() => JobChange)
  change!: JobChange;

  @Field({ description: 'Whether the job is paused after the change.' })
  paused!: boolean;

  @Field({ description: 'True when the change is its deletion: `job(id)` answers null from now on.' })
  deleted!: boolean;
}

export { JobChange };
