"""Identity, access and audit: accounts, roles and permissions, sessions, tokens, API keys."""
