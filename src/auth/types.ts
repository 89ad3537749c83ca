/** Who is calling: `sub` of a verified token. Every query filters by it. */
export interface Principal {
  sub: string;
  /** Expiry of the token, epoch seconds. */
  exp: number;
  /** A name to show: the token's `name` or `preferred_username` claim, or the session's. */
  name?: string;
}

export type AuthConfig =
  | {
      mode: 'jwks';
      jwksUrl: string;
      issuer: string;
      audience: string;
      /** Allowed JWS algorithms, e.g. ['RS256']. `none` and HS* are never accepted here. */
      algorithms: string[];
    }
  | {
      mode: 'local';
      /** UTF-8 bytes of KILN_JWT_SECRET (>= 32 bytes). */
      secret: Uint8Array;
      issuer: string;
      audience: string;
    };

export interface TokenVerifier {
  /** Resolves with the principal, or throws UnauthenticatedError with a reason. */
  verify(token: string): Promise<Principal>;
}
