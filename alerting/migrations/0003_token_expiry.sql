-- Bearer tokens may expire; a token is named by the first 16 hex digits of its hash.
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;
