// Types of the SDK module the app loads at run time from ./sdk/relais.js
// (client-sdk/web, copied into the app's build): esbuild leaves that
// import alone, and this file lets tsc check the app against the SDK's
// own public types.
import type { OpenOptions, Relais } from '../../../client-sdk/web/src/api';
export { RelaisError } from '../../../client-sdk/web/src/api';
export type * from '../../../client-sdk/web/src/api';
export declare function open(opts?: OpenOptions): Promise<Relais>;
