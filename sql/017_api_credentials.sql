-- Issue 12: who may call the seed APIs, and which files an account sees.
--
-- A credential belongs to an account (role 'account': it sees only that account's files, calls,
-- reports and billing records) or to nobody (role 'operator': sees everything). Secrets are never
-- stored, only their hashes:
--   token          an API token (X-Auth-Token, ?auth_token=, Bearer, x-api-token): sha256 of a
--                  random 256-bit value, so a plain digest is enough and is looked up by index
--   api_key        a Kazoo api key, exchanged for a session token by PUT /v{1,2}/api_auth
--   session        a token issued by that exchange; it expires (expires_at)
--   feed_password  the billing feed's password (seed 004 login/password): chosen by a person, so
--                  stored as a salted scrypt hash and checked against the account's rows only

CREATE TABLE api_credentials (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id   text CHECK (account_id <> ''),
    role         text NOT NULL CHECK (role IN ('account', 'operator')),
    kind         text NOT NULL CHECK (kind IN ('token', 'api_key', 'session', 'feed_password')),
    label        text,
    secret_hash  text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    CONSTRAINT api_credentials_role_account CHECK ((role = 'account') = (account_id IS NOT NULL)),
    CONSTRAINT api_credentials_feed_account CHECK (kind <> 'feed_password' OR account_id IS NOT NULL)
);

CREATE UNIQUE INDEX api_credentials_digest_idx ON api_credentials (secret_hash) WHERE kind <> 'feed_password';
CREATE INDEX api_credentials_account_idx ON api_credentials (account_id, kind);

COMMENT ON TABLE api_credentials IS
    'Credentials of the HTTP APIs (issue 12), created and revoked with `cdrflow accounts token|key|password|revoke`. Only hashes are stored.';
COMMENT ON COLUMN api_credentials.account_id IS 'the account whose records the credential sees (calls.account_id, cdr_files.account_id, ...); NULL for an operator';
COMMENT ON COLUMN api_credentials.role IS 'account (its own records only) or operator (every record)';
COMMENT ON COLUMN api_credentials.kind IS 'token, api_key (Kazoo api_auth), session (issued by api_auth, expires) or feed_password (seed 004)';
COMMENT ON COLUMN api_credentials.secret_hash IS 'sha256 hex of a token, key or session; scrypt$... of a feed password';
COMMENT ON COLUMN api_credentials.expires_at IS 'after it the credential is refused (sessions); NULL: no expiry';
COMMENT ON COLUMN api_credentials.revoked_at IS 'when it was revoked; a revoked credential is refused at once';

-- Which files an account sees in the CDR Files API (seed 000): the files it uploaded through the
-- API, and every file of a carrier that belongs to it (carriers.account_id, `account:` in the
-- carrier file). Files of no account are seen by operators only.
ALTER TABLE cdr_files ADD COLUMN account_id text;
ALTER TABLE carriers ADD COLUMN account_id text;
CREATE INDEX cdr_files_account_idx ON cdr_files (account_id, id) WHERE account_id IS NOT NULL;
COMMENT ON COLUMN cdr_files.account_id IS 'the account that uploaded the file through the API (seed 000 upload); NULL for collected files';
COMMENT ON COLUMN carriers.account_id IS 'the account that sees this carrier''s files in the CDR Files API; NULL: operators only';
