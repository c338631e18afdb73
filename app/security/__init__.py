"""Who may ask what: API keys and their scopes, persisted (trusted) documents."""
