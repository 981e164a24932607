"""The audit log: who changed what, from where, when, and how it went (``docs/api.md``)."""
