// OAuth 2.0 / OpenID Connect authorization server for the test suite, built on
// oidc-provider. It listens on 127.0.0.1 only and keeps all state in memory.
//
// Environment variables:
//   OIDC_PORT               TCP port on 127.0.0.1 (required, 1-65535)
//   OIDC_ISSUER             issuer identifier, e.g. http://127.0.0.1:PORT (required)
//   OIDC_CLIENTS            JSON array of client metadata objects (required)
//   OIDC_ACCESS_TOKEN_TTL   access token lifetime in seconds (default 3600)
//   OIDC_REFRESH_TOKEN_TTL  refresh token lifetime in seconds (default 86400)
//   OIDC_EXTRA_SCOPES       space-separated scopes accepted in addition to the
//                           built-in list below (optional)
//   OIDC_USER_GROUPS_FILE   path of a JSON object that maps a login to the list
//                           of its groups, e.g. {"alice": ["sales"]}; read again
//                           for every claims request, so a test can change it
//                           while the server runs (optional)
//   OIDC_USER_GROUPS        the same JSON object inline, used when no file is
//                           given (optional)
//
// The groups scope releases a "groups" claim: the login's list, or [] if the
// login is not in the map.
//
// On success it prints exactly one line, "READY <issuer>", on stdout. All
// diagnostics go to stderr. SIGTERM and SIGINT close the listener and exit 0.

import { createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import process from 'node:process';

import Provider from 'oidc-provider';

const LISTEN_HOST = '127.0.0.1';

// Scopes the app sends: the OIDC ones plus provider-style API scopes that an
// admin may configure for a connection.
const BUILT_IN_SCOPES = ['openid', 'offline_access', 'profile', 'email', 'groups', 'repo', 'read', 'write'];

// The devInteractions pages and the default error pages import a web font
// from fonts.googleapis.com (oidc-provider 9.13.3, lib/views/layout.js and
// lib/helpers/defaults.js). Tests must not make a browser reach any host
// other than 127.0.0.1, so that import is removed from every HTML response.
const EXTERNAL_FONT_IMPORT = /@import url\(https?:\/\/fonts\.googleapis\.com\/[^)]*\);?/g;

// Same-origin-only style and font sources, so a browser blocks any external
// stylesheet or font that the rewrite above does not catch.
const CONTENT_SECURITY_POLICY = "style-src 'self' 'unsafe-inline'; font-src 'self'";

// Provider events that report a failed request (oidc-provider 9.13.3 emits
// these names). Each one is logged to stderr so a failing test shows why the
// server rejected a request. Errors on the devInteractions pages emit no event
// unless they are server_error.
const ERROR_EVENTS = [
  'authorization.error',
  'backchannel.error',
  'discovery.error',
  'end_session.error',
  'grant.error',
  'introspection.error',
  'jwks.error',
  'pushed_authorization_request.error',
  'revocation.error',
  'server_error',
  'userinfo.error',
];

function fail(message) {
  process.stderr.write(`oidc test server: ${message}\n`);
  process.exit(2);
}

function readRequired(name) {
  const value = process.env[name];
  if (value === undefined || value === '') {
    fail(`environment variable ${name} is missing`);
  }
  return value;
}

function readPositiveInteger(name, defaultValue, maximum) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') {
    if (defaultValue === undefined) {
      fail(`environment variable ${name} is missing`);
    }
    return defaultValue;
  }
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > maximum) {
    fail(`environment variable ${name} must be an integer from 1 to ${maximum}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

function readClients() {
  const raw = readRequired('OIDC_CLIENTS');
  let clients;
  try {
    clients = JSON.parse(raw);
  } catch (error) {
    fail(`environment variable OIDC_CLIENTS is not valid JSON: ${error.message}`);
  }
  if (!Array.isArray(clients) || clients.length === 0) {
    fail('environment variable OIDC_CLIENTS must be a non-empty JSON array of client metadata objects');
  }
  // A client without grant_types would get oidc-provider's default of
  // ["authorization_code"] and never receive a refresh token.
  return clients.map((client) => ({
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    ...client,
  }));
}

function readConfiguration() {
  const extraScopes = (process.env.OIDC_EXTRA_SCOPES || '').split(' ').filter(Boolean);
  return {
    port: readPositiveInteger('OIDC_PORT', undefined, 65535),
    issuer: readRequired('OIDC_ISSUER'),
    clients: readClients(),
    accessTokenTtl: readPositiveInteger('OIDC_ACCESS_TOKEN_TTL', 3600, 10 * 365 * 24 * 3600),
    refreshTokenTtl: readPositiveInteger('OIDC_REFRESH_TOKEN_TTL', 86400, 10 * 365 * 24 * 3600),
    scopes: [...new Set([...BUILT_IN_SCOPES, ...extraScopes])],
  };
}

// Signing keys for ID tokens, made fresh at every start. They exist only in
// this process, so no key material is stored in the repository.
//
// The key pair is generated as PEM and exported to JWK from a separate
// KeyObject. With Node.js 20.20.2, exporting the KeyObject returned by
// generateKeyPairSync to JWK deadlocked in 5 of about 150 starts. A gdb stack
// showed a garbage collection during the export destroying the key generation
// job, whose destructor waits for the key mutex that the export holds. The PEM
// route did not hang in 300 starts.
function generatePrivateJwk(type, options) {
  const { privateKey } = generateKeyPairSync(type, {
    ...options,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  return createPrivateKey(privateKey).export({ format: 'jwk' });
}

function generateJwks() {
  const rsa = generatePrivateJwk('rsa', { modulusLength: 2048 });
  const ec = generatePrivateJwk('ec', { namedCurve: 'P-256' });
  return {
    keys: [
      { ...rsa, kid: 'test-rs256', use: 'sig', alg: 'RS256' },
      { ...ec, kid: 'test-es256', use: 'sig', alg: 'ES256' },
    ],
  };
}

function parseUserGroups(raw, source) {
  let groups;
  try {
    groups = JSON.parse(raw);
  } catch (error) {
    throw new Error(`${source} is not valid JSON: ${error.message}`);
  }
  if (groups === null || typeof groups !== 'object' || Array.isArray(groups)) {
    throw new Error(`${source} must be a JSON object that maps a login to a list of groups`);
  }
  return groups;
}

// Groups of each login. A file is read at every call so that tests can change
// a user's groups between two sign-ins.
function readUserGroups() {
  const path = process.env.OIDC_USER_GROUPS_FILE;
  if (path) {
    return parseUserGroups(readFileSync(path, 'utf8'), `OIDC_USER_GROUPS_FILE ${path}`);
  }
  return parseUserGroups(process.env.OIDC_USER_GROUPS || '{}', 'environment variable OIDC_USER_GROUPS');
}

// Any login is accepted by devInteractions and becomes the account id.
async function findAccount(_ctx, accountId) {
  return {
    accountId,
    async claims() {
      const groups = readUserGroups()[accountId];
      return {
        sub: accountId,
        name: accountId,
        preferred_username: accountId,
        email: `${accountId}@example.test`,
        email_verified: true,
        groups: Array.isArray(groups) ? groups : [],
      };
    },
  };
}

function buildProvider(config) {
  return new Provider(config.issuer, {
    clients: config.clients,
    findAccount,
    jwks: generateJwks(),
    scopes: config.scopes,
    claims: {
      acr: null,
      auth_time: null,
      iss: null,
      sid: null,
      openid: ['sub'],
      profile: ['name', 'preferred_username'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
    },
    cookies: {
      // Default names (_session, _interaction, _interaction_resume and their
      // .sig companions) are kept. They do not collide with the app's
      // personal_auth_session cookie, which matters because cookies are not
      // isolated by port and both servers run on 127.0.0.1.
      keys: [randomBytes(32).toString('base64url')],
    },
    features: {
      devInteractions: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
    },
    pkce: {
      required: () => true,
    },
    // Issue a refresh token on every code exchange for clients allowed the
    // refresh_token grant, even without the offline_access scope.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    // Tokens outlive the provider's browser session. The default ties tokens
    // issued without offline_access to that session, so ending it at the
    // provider would invalidate them.
    expiresWithSession: async () => false,
    // Every refresh rotates the refresh token. Presenting a rotated (consumed)
    // refresh token again fails with invalid_grant and revokes the whole grant.
    rotateRefreshToken: true,
    ttl: {
      AccessToken: config.accessTokenTtl,
      RefreshToken: config.refreshTokenTtl,
    },
  });
}

function removeExternalFonts(provider) {
  provider.use(async (ctx, next) => {
    await next();
    if (typeof ctx.body === 'string' && ctx.response.is('html')) {
      ctx.body = ctx.body.replace(EXTERNAL_FONT_IMPORT, '');
      ctx.set('Content-Security-Policy', CONTENT_SECURITY_POLICY);
    }
  });
}

function logErrors(provider) {
  for (const eventName of ERROR_EVENTS) {
    provider.on(eventName, (ctx, error) => {
      const detail = error?.error_description ? `${error.message} (${error.error_description})` : error?.message;
      process.stderr.write(`oidc test server: ${eventName}: ${detail}\n`);
    });
  }
}

// oidc-provider validates static client metadata only when a request first
// looks the client up. Loading every client here reports invalid metadata at
// start instead of as invalid_client in the middle of a test.
async function validateClients(provider, clients) {
  for (const { client_id: clientId } of clients) {
    try {
      await provider.Client.find(clientId);
    } catch (error) {
      const detail = error.error_description ? `${error.message} (${error.error_description})` : error.message;
      fail(`invalid metadata for client ${JSON.stringify(clientId)}: ${detail}`);
    }
  }
}

async function main() {
  const config = readConfiguration();
  try {
    readUserGroups();
  } catch (error) {
    fail(error.message);
  }

  let provider;
  try {
    provider = buildProvider(config);
  } catch (error) {
    fail(`invalid provider configuration: ${error.message}`);
  }
  await validateClients(provider, config.clients);
  removeExternalFonts(provider);
  logErrors(provider);

  const server = provider.listen(config.port, LISTEN_HOST, () => {
    process.stdout.write(`READY ${config.issuer}\n`);
  });
  server.on('error', (error) => fail(`failed to listen on ${LISTEN_HOST}:${config.port}: ${error.message}`));

  const shutDown = (signal) => {
    process.stderr.write(`oidc test server: ${signal} received, stopping\n`);
    server.close(() => process.exit(0));
    // Keep-alive connections from browsers or requests sessions would keep
    // close() waiting, so they are closed right away.
    server.closeAllConnections();
  };
  process.once('SIGTERM', () => shutDown('SIGTERM'));
  process.once('SIGINT', () => shutDown('SIGINT'));
}

await main();
