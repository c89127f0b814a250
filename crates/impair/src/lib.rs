//! protolab-impair (being built).
