import { useState } from 'react';
import { Link, useLocation } from 'wouter';
import { signOut, type SessionUser } from '../api';
import './Shell.css';

const NAV: Array<{ href: string; label: string }> = [
  { href: '/', label: 'Board' },
  { href: '/submit', label: 'Submit a job' },
];

/** The frame of every page: brand, navigation, the signed-in user and a sign-out button. */
export function Shell({ user, children }: { user: SessionUser; children: React.ReactNode }) {
  const [location] = useLocation();
  const [leaving, setLeaving] = useState(false);
  const leave = async () => {
    setLeaving(true);
    try {
      await signOut();
    } finally {
      // A full load: the session gate asks the server again and shows the signed-out page.
      window.location.assign('/');
    }
  };
  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="shell-header">
        <Link href="/" className="shell-brand">
          <img src="/favicon.svg" alt="" />
          Kiln
        </Link>
        <nav className="shell-nav" aria-label="Main">
          {NAV.map((item) => (
            <Link key={item.href} href={item.href} aria-current={location === item.href ? 'page' : undefined}>
              {item.label}
            </Link>
          ))}
        </nav>
        <div className="shell-user">
          <span data-testid="user-name" title={user.id}>
            {user.name}
          </span>
          <button type="button" onClick={leave} disabled={leaving}>
            Sign out
          </button>
        </div>
      </header>
      {children}
    </>
  );
}
