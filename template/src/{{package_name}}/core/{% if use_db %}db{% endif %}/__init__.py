"""Database access: engine/client construction, sessions, and error mapping."""
