-- recsink's own OpenID Connect identity provider (issue 13): the keys that
-- sign the identity tokens customers' IAM roles trust. The private key is
-- sealed by the secret box, bound to the key's ID; a retired key stays
-- published until every token it signed has expired.
CREATE TABLE oidc_signing_keys (
    seq                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                 text NOT NULL UNIQUE,
    algorithm          text NOT NULL,
    private_ciphertext bytea NOT NULL,
    created_at         timestamptz NOT NULL,
    retired_at         timestamptz
);
