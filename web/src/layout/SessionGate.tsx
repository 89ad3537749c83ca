import { useEffect, useState } from 'react';
import { fetchSession, type SessionState, type SessionUser } from '../api';
import './Shell.css';

/**
 * Renders the app for a signed-in user, or a sign-in link when `GET /api/v1/session` answers
 * 401 (the session cookie is missing or expired). `/api/v1/login` returns here after sign-in.
 */
export function SessionGate({ children }: { children: (user: SessionUser) => React.ReactNode }) {
  const [session, setSession] = useState<SessionState>({ state: 'loading' });
  useEffect(() => {
    fetchSession().then(setSession, (err: unknown) => setSession({ state: 'error', message: String(err) }));
  }, []);
  switch (session.state) {
    case 'loading':
      return (
        <main id="main" className="page muted" aria-busy="true">
          Loading…
        </main>
      );
    case 'signed-out':
      return (
        <main id="main" className="signed-out">
          <h1>Kiln</h1>
          <p>You are signed out.</p>
          <p>
            <a className="sign-in" href="/api/v1/login">
              Sign in
            </a>
          </p>
        </main>
      );
    case 'error':
      return (
        <main id="main" className="page">
          <h1>Kiln is not reachable</h1>
          <p className="error">{session.message}</p>
        </main>
      );
    case 'signed-in':
      return <>{children(session.user)}</>;
  }
}
