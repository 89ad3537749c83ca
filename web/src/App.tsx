import { Route, Switch } from 'wouter';
import { SessionGate } from './layout/SessionGate';
import { BoardPage } from './board/BoardPage';
import { BuildPage } from './build/BuildPage';
import { EditorPage } from './editor/EditorPage';
import { Shell } from './layout/Shell';
import { SchedulePage } from './schedule/SchedulePage';

/** The app's routes; the server answers index.html for exactly these paths (src/http/webApp.ts). */
export function App() {
  return (
    <SessionGate>
      {(user) => (
        <Shell user={user}>
          <Switch>
            <Route path="/" component={BoardPage} />
            <Route path="/executions/:id">{(params) => <BuildPage id={params.id} />}</Route>
            <Route path="/jobs/:id">{(params) => <SchedulePage id={params.id} />}</Route>
            <Route path="/submit" component={EditorPage} />
            <Route>
              <main id="main" className="page">
                <h1>Not found</h1>
                <p>There is no page at this address.</p>
              </main>
            </Route>
          </Switch>
        </Shell>
      )}
    </SessionGate>
  );
}
