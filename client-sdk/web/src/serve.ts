// The engine's methods by name, for the backends (worker and in-process):
// one list, so that both expose exactly the same calls.
import type { Engine } from './engine.js';
import { toRelaisError } from './engine.js';

export async function serve(engine: Engine, method: string, args: unknown[]): Promise<unknown> {
  const a = args as never[];
  try {
    switch (method) {
      case 'login':
        return await engine.login(a[0], a[1], a[2]);
      case 'logout':
        return await engine.logout();
      case 'sync':
        return await engine.sync();
      case 'status':
        return engine.status();
      case 'query':
        return engine.query(a[0], a[1]);
      case 'exec':
        return engine.exec(a[0], a[1]);
      case 'transaction':
        return engine.transaction(a[0]);
      case 'rejected':
        return engine.rejected();
      case 'retry':
        return engine.retry(a[0], a[1]);
      case 'dismiss':
        return engine.dismiss(a[0]);
      case 'erase':
        return engine.erase(a[0]);
      case 'rules':
        return engine.rules;
      case 'setOnline':
        return engine.setOnline(a[0]);
    }
  } catch (e) {
    throw toRelaisError(e, engine.rules);
  }
  throw new Error(`relais: unknown method ${method}`);
}
