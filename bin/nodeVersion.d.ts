/** The oldest Node Kiln runs on. */
export declare const REQUIRED_NODE: string;
/** Why Node `version` cannot run Kiln, in one line; null when it can. */
export declare function nodeVersionProblem(version: string, required?: string): string | null;
