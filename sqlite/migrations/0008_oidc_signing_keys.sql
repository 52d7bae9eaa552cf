-- recsink's own OpenID Connect identity provider (issue 13): the keys that
-- sign the identity tokens customers' IAM roles trust. The private key is
-- sealed by the secret box, bound to the key's ID; a retired key stays
-- published until every token it signed has expired.
CREATE TABLE oidc_signing_keys (
    seq                INTEGER PRIMARY KEY AUTOINCREMENT,
    id                 TEXT NOT NULL UNIQUE,
    algorithm          TEXT NOT NULL,
    private_ciphertext BLOB NOT NULL,
    created_at         TEXT NOT NULL,
    retired_at         TEXT
) STRICT;
