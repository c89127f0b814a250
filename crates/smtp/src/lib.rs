//! protolab-smtp (being built).
